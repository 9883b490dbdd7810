"""Stopping the runtime closes every database connection, even when a background loop is mid-query;
the shop shuts down only after the middleware's work that calls into it has ended."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import httpx
import pytest

from privacy_middleware.demo.run import build_demo
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


async def test_the_shop_shuts_down_after_the_retention_run_that_reads_its_database(
    tmp_path: Path, asgi_lifespan: Any
) -> None:
    # The server's shutdown reaches the middleware first, then the shop, which closes its database;
    # a retention run still reading that database used to find it closed under it (and leak its
    # connection). The run now ends first.
    app, shop = build_demo(tmp_path, audit={"retention_interval_seconds": 0.05})
    order: list[str] = []
    reading = asyncio.Event()
    adapter = app.runtime.retention.adapter
    expired = adapter.expired

    async def slow_expired(*args: Any) -> Any:
        order.append("retention reads the shop")
        reading.set()
        await asyncio.sleep(0.3)
        found = await expired(*args)
        order.append("retention done")
        return found

    adapter.expired = slow_expired
    shop_lifespan = shop.app.router.lifespan_context

    @asynccontextmanager
    async def recorded(starlette: Any) -> AsyncIterator[None]:
        async with shop_lifespan(starlette):
            yield
            order.append("shop closes its database")

    shop.app.router.lifespan_context = recorded
    async with asgi_lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        assert (await c.get("/health")).status_code == 200  # the first request starts the maintenance
        await asyncio.wait_for(reading.wait(), 10)
    assert order[-1] == "shop closes its database"
    assert order.count("retention reads the shop") == order.count("retention done") >= 1
