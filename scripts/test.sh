#!/usr/bin/env bash
# Set up a virtual environment with the dev tools (first run only), lint and type-check, then run the
# whole test suite (extra arguments go to pytest).
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`) and Redis on 127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check --quiet src tests bench
.venv/bin/mypy
# The editable install above builds the native disclosure pass (a compiler is needed here): its tests
# must run, not skip (tests/support/native.py).
export PRIVACY_TEST_NATIVE="${PRIVACY_TEST_NATIVE:-required}"
# The whole suite (no test paths given) also reports coverage and enforces the floor in pyproject.toml.
COVERAGE=(--cov=privacy_middleware --cov-report=term:skip-covered)
for arg in "$@"; do
  if [ -e "${arg%%::*}" ]; then COVERAGE=(); fi  # a test path: a partial run
done
exec .venv/bin/python -m pytest "${COVERAGE[@]}" "$@"
