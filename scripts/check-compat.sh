#!/usr/bin/env bash
# Install the project into a venv that already holds a typical shop's stack and prove that pip keeps
# every one of those versions (no upgrade, no downgrade), then serve one request through the middleware
# on that stack. Exit 0 when nothing changed and the request worked.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SHOP_STACK=(
  "fastapi==0.115.*"
  "pydantic==2.10.*"
  "httpx==0.27.*"
  "sqlalchemy[asyncio]==2.0.*"
  "uvicorn==0.34.*"
  "redis==5.*"
)
start=$(date +%s)
"$PYTHON" -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/python" -m pip --quiet --disable-pip-version-check)
"${PIP[@]}" install "${SHOP_STACK[@]}" 2> >(grep -v "is ignored" >&2)
"${PIP[@]}" freeze | sort >"$WORK/before.txt"
"${PIP[@]}" install . 2> >(grep -v "is ignored" >&2)
"${PIP[@]}" freeze | sort >"$WORK/after.txt"
# A package whose version changed shows up as a removed line; new packages are fine.
changed=$(comm -23 "$WORK/before.txt" "$WORK/after.txt" || true)
if [ -n "$changed" ]; then
  echo "installing privacy-middleware changed the shop's packages:" >&2
  echo "$changed" >&2
  exit 1
fi
(cd "$WORK" && "$WORK/venv/bin/python" - <<'PY'
import asyncio
from importlib.metadata import version
from pathlib import Path

import httpx
from fastapi import FastAPI

import privacy_middleware
from privacy_middleware import PrivacyMiddleware, Settings

shop = FastAPI()


@shop.get("/catalogue")
async def catalogue() -> dict[str, list[str]]:
    return {"teas": ["sencha"]}


async def main() -> None:
    policy = Path(privacy_middleware.__file__).parent / "demo" / "policy.toml"
    app = PrivacyMiddleware(shop, Settings(policy_file=policy, database_url="sqlite:///privacy.db", data_dir="."))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
        assert (await client.get("/catalogue")).json() == {"teas": ["sencha"]}
        assert (await client.get("/privacy/policy")).status_code == 200
    await app.runtime.stop()


asyncio.run(main())
print("served on " + ", ".join(f"{p} {version(p)}" for p in ("fastapi", "starlette", "pydantic", "httpx", "sqlalchemy")))
PY
)
echo "compat: installed beside ${SHOP_STACK[*]} without changing them ($(( $(date +%s) - start )) s)"
