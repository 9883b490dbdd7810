#!/usr/bin/env bash
# Set up a virtual environment (first run only) and run the demo shop behind the middleware.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[server,cli]'
exec .venv/bin/privacy-middleware demo "$@"
