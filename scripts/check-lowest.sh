#!/usr/bin/env bash
# Resolve every direct dependency at the LOWEST version pyproject allows (uv --resolution lowest-direct)
# and run the core test suite against it, so the lower bounds in pyproject are tested, not hoped for.
# Extra arguments go to pytest (default: the core subset below).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CORE_TESTS=(
  tests/test_middleware.py
  tests/test_settings.py
  tests/test_public_api.py
  tests/test_logs.py
  tests/test_lifecycle.py
  tests/identity/test_jwt.py
  tests/policy
  tests/fields
  tests/cli
  tests/docs
  tests/api
)
start=$(date +%s)
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv>=0.4" 2> >(grep -v "is ignored" >&2)
UV="$WORK/tools/bin/uv"
"$UV" venv --quiet --python "$PYTHON" "$WORK/venv"
VIRTUAL_ENV="$WORK/venv" "$UV" pip install --quiet --resolution lowest-direct -e '.[dev]'
echo "lowest direct versions:"
VIRTUAL_ENV="$WORK/venv" "$UV" pip freeze | grep -i -E "^(starlette|pyjwt|cryptography|cachetools|httpx|orjson|pydantic|pydantic-settings|python-dotenv|python-json-logger|sqlalchemy|aiosqlite|redis|prometheus-client|asyncpg|uvicorn|rich|django)==" | tr '\n' ' '
echo
installed=$(date +%s)
if [ $# -eq 0 ]; then set -- "${CORE_TESTS[@]}" -q -p no:cacheprovider; fi
"$WORK/venv/bin/python" -m pytest "$@"
echo "lowest: install $(( installed - start )) s, tests $(( $(date +%s) - installed )) s"
