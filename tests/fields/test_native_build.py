import subprocess
import sys
import textwrap
from pathlib import Path

from privacy_middleware.fields import native
from support.native import REQUIRED


def test_the_native_pass_is_built_where_the_test_run_requires_it() -> None:
    """scripts/test.sh requires the build: a run there without it fails here (and in every native test)."""
    assert native.AVAILABLE or not REQUIRED, "PRIVACY_TEST_NATIVE=required, but fields/_native was not built"


def test_the_built_extension_matches_the_interface_the_package_expects() -> None:
    if native.AVAILABLE:
        assert native.usable(native._native)


def test_an_extension_built_from_another_version_is_not_used(tmp_path: Path) -> None:
    """A stale build (its functions a step behind) would fail requests at run time: the Python path serves."""
    script = tmp_path / "stale.py"
    script.write_text(
        textwrap.dedent(
            """
            import logging, sys, types
            logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
            stale = types.ModuleType("privacy_middleware.fields._native")
            stale.digit_run = stale.first_values = stale.strict_verdict = lambda *a: None
            stale.card_send = stale.bodiless_card_send = stale.chain = lambda *a: None
            stale.INTERFACE = 1
            sys.modules["privacy_middleware.fields._native"] = stale
            from privacy_middleware.fields import native
            from privacy_middleware.pipeline import native_request
            print("available", native.AVAILABLE, native.digit_run, native_request.ENABLED)
            """
        )
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    assert "available False None False" in run.stdout
    assert "built from another version of _native.c (interface 1" in run.stdout
