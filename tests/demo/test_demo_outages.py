"""The store (PostgreSQL) cut off under a running instance: key routes answer 503 with a code,
routes without a plan pass through, logins keep working, and every audit event is spooled and
replayed when the store is back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.demo.run import build_demo
from support.demo import Demo
from support.postgres import cut_off, restore

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_store_outage_gives_503_on_key_routes_and_loses_no_audit_event(
    tmp_path: Path, postgres_url: str, asgi_lifespan: Any
) -> None:
    app, shop = build_demo(tmp_path, database_url=postgres_url, audit={"retention_interval_seconds": 0})
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 40000))
    async with asgi_lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        demo = Demo(app, shop, client, tmp_path)
        _, token = await demo.register()
        order = await demo.checkout(token)
        assert order.status_code == 201, order.text
        auth = {"authorization": f"Bearer {token}"}
        await app.runtime.audit.flush()
        await cut_off(postgres_url)
        try:
            await asyncio.sleep(1.1)  # past the erasure bound: cached keys are no longer trusted
            assert (await client.get("/health")).status_code == 200  # no plan: untouched
            refused = await demo.checkout(token)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] in {"key_store_unavailable", "store_unavailable"}
            wrong = {"email": "ada@example.com", "password": "wrong"}
            assert [(await client.post("/auth/login", json=wrong)).status_code for _ in range(3)] == [401] * 3
            await app.runtime.audit.flush()
        finally:
            await restore(postgres_url)
        assert (await client.get(f"/orders/{order.json()['id']}", headers=auth)).status_code == 200
        await app.runtime.audit.flush()
        failures = await search(app.runtime.database, kinds=["authentication.logon"])
        assert sum(1 for e in failures if e.document and e.document["status"] == "failure") == 3
