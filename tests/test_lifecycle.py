"""Stopping the runtime closes every database connection, even when a background loop is mid-query."""

from __future__ import annotations

import gc
from pathlib import Path

import aiosqlite
import httpx
import pytest

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio

POLICY = {
    "policy": {"name": "t", "version": "1", "effective_date": "2026-01-01"},
    "categories": {"user.name": {}},
    "purposes": {"order_fulfilment": {"legal_basis": "contract"}},
    "routes": [
        {
            "method": "GET",
            "path": "/people/{pid}",
            "response": {"personal_objects": ["$"], "fields": [{"select": "name", "category": "user.name"}]},
        }
    ],
}


async def shop(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b'{"name": "Ada"}'})  # type: ignore[operator]


def open_sqlite_connections() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is aiosqlite.Connection and o._connection is not None)


@pytest.mark.parametrize("attempt", range(3))
async def test_stop_right_after_start_leaves_no_connection_open(tmp_path: Path, attempt: int) -> None:
    # The breach monitor and the erasure watch start querying as soon as the runtime starts; a stop that
    # cancelled them mid-connect used to leave a driver connection (and its thread) behind.
    before = open_sqlite_connections()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    app = PrivacyMiddleware(shop, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
        assert (await client.get("/people/1")).status_code == 200
    await runtime.stop()
    assert open_sqlite_connections() == before
