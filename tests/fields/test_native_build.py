from privacy_middleware.fields import native
from support.native import REQUIRED


def test_the_native_pass_is_built_where_the_test_run_requires_it() -> None:
    """scripts/test.sh requires the build: a run there without it fails here (and in every native test)."""
    assert native.AVAILABLE or not REQUIRED, "PRIVACY_TEST_NATIVE=required, but fields/_native was not built"
