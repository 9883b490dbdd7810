#!/usr/bin/env bash
# Memory-safety check of the native extension (fields/_native.c), which reads untrusted request and
# response bodies and headers: build it with AddressSanitizer and UndefinedBehaviorSanitizer in a
# copy of the tree, then run every test that calls it (the hypothesis properties compare it with the
# pure-Python path on generated, cut and mutated inputs) with the sanitizers loaded. Any report
# fails the run. Needs gcc and the dev venv (.venv, from scripts/test.sh). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cp -r pyproject.toml src tests "$WORK/"
find "$WORK/src" -name '_native*.so' -delete
INCLUDE="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
SUFFIX="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
gcc -shared -fPIC -I"$INCLUDE" -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -g -O1 -Wall -Werror src/privacy_middleware/fields/_native.c -o "$WORK/src/privacy_middleware/fields/_native$SUFFIX"
ls "$WORK"/src/privacy_middleware/fields/_native*.so >/dev/null

LIBASAN="$(gcc -print-file-name=libasan.so)"
LIBUBSAN="$(gcc -print-file-name=libubsan.so)"
# Python's own allocations are never freed at exit: leak reports would be about the interpreter.
# Python objects from malloc, not from its own arenas, so that ASan sees their bounds.
export PYTHONMALLOC=malloc
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PRIVACY_TEST_NATIVE=required
export PRIVACY_PROPERTY_EXAMPLES="${PRIVACY_PROPERTY_EXAMPLES:-1000}"
cd "$WORK"
LD_PRELOAD="$LIBASAN $LIBUBSAN" PYTHONPATH="$WORK/src" "$ROOT/.venv/bin/python" -c \
  "import privacy_middleware.fields.native as n, sys; sys.exit(0 if n.AVAILABLE and n._native.__file__.startswith('$WORK/') else 1)"
LD_PRELOAD="$LIBASAN $LIBUBSAN" PYTHONPATH="$WORK/src" "$ROOT/.venv/bin/python" -m pytest -q -p no:cacheprovider --capture=sys \
  tests/properties/test_native_disclosure.py tests/properties/test_native_prefilter.py \
  tests/properties/test_fail_closed_properties.py tests/properties/test_card_responses_property.py \
  tests/properties/test_native_card_send.py tests/properties/test_native_request.py \
  tests/fields tests/demo/test_native_disclosure.py tests/demo/test_card_sentinel.py \
  tests/demo/test_card_responses.py tests/asgi/test_passthrough_fast_path.py "$@"
