"""A canary is caught on every path that discloses it, not only shop responses: the shop's
outbound calls through PrivacyTransport and subject-rights exports; a suspended recipient's
outbound transfer is refused."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from privacy_middleware.audit.query import search
from privacy_middleware.breach.canaries import fake_profile
from privacy_middleware.breach.planters import RoutePlanter
from privacy_middleware.errors import PrivacyError
from support.demo import Demo

from .conftest import open_demo

pytestmark = pytest.mark.anyio


@pytest.fixture
async def demo(tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[Demo]:
    async for opened in open_demo(tmp_path, asgi_lifespan, 'containment = "recipient"'):
        yield opened


async def plant(demo: Demo) -> tuple[str, str]:
    canary = await RoutePlanter(demo.client).plant(fake_profile())
    await demo.app.runtime.breach.canaries.remember(canary, batch="test")
    return canary.customer_id, canary.order_ids[0]


async def findings(demo: Demo, name: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    runtime = demo.app.runtime
    for _ in range(int(timeout / 0.05)):
        await runtime.audit.flush()
        found = await search(runtime.database, kinds=[f"detection_finding.{name}"])
        if found:
            return [r.document or {} for r in found]
        await asyncio.sleep(0.05)
    return []


async def test_outbound_transfer_of_a_canary_order_is_caught_and_the_recipient_contained(
    demo: Demo, httpx_mock: HTTPXMock
) -> None:
    _, order_id = await plant(demo)
    with sqlite3.connect(demo.data_dir / "shop.db") as connection:
        stored = orjson.loads(connection.execute("select document from orders where id = ?", (order_id,)).fetchone()[0])
    httpx_mock.add_response(url="https://api.logistics.example/v1/shipments", json={"tracking": "TRK1"})
    async with httpx.AsyncClient(transport=demo.app.transport(httpx.AsyncHTTPTransport())) as partner:
        response = await partner.post("https://api.logistics.example/v1/shipments", json=stored)
    assert response.status_code == 200
    [finding] = await findings(demo, "canary_accessed")
    related = finding["detail"]["related"]
    assert related["recipient"] == "logistics" and related["route"] == "POST /v1/shipments"
    assert related["action"] == "disclose" and finding["severity_id"] == 5
    # containment = "recipient": the next transfer to logistics is refused before anything is sent
    for _ in range(60):
        if demo.app.runtime.breach.suspensions.blocks_recipient("logistics"):
            break
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(transport=demo.app.transport(httpx.AsyncHTTPTransport())) as partner:
        with pytest.raises(PrivacyError) as refused:
            await partner.post("https://api.logistics.example/v1/shipments", json=stored)
    assert refused.value.code == "access_suspended"
    assert len(httpx_mock.get_requests()) == 1
    # and the logistics partner's own token is refused on the shop's routes
    token = await demo.partner("logistics-co")
    answer = await demo.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 403 and answer.json()["code"] == "access_suspended"


async def test_an_operator_export_of_a_canary_is_caught(demo: Demo) -> None:
    customer_id, _ = await plant(demo)
    rights = demo.app.runtime.rights
    assert rights is not None
    await rights.export(customer_id, principal="operator-7", reason="test export")
    [finding] = await findings(demo, "canary_accessed")
    related = finding["detail"]["related"]
    assert related["principal"] == "operator-7" and related["action"] == "export"


async def test_the_decoy_itself_and_other_customers_raise_nothing(demo: Demo) -> None:
    await plant(demo)
    _, token = await demo.register()
    await demo.checkout(token)
    await demo.client.get("/orders", headers={"authorization": f"Bearer {token}"})
    assert await findings(demo, "canary_accessed", timeout=1.0) == []


async def test_an_instance_without_the_monitor_enforces_a_suspension_made_elsewhere(
    demo: Demo, tmp_path: Path, asgi_lifespan: Any
) -> None:
    from privacy_middleware.demo.run import build_demo

    other, _ = build_demo(
        tmp_path,
        policy_file=tmp_path / "policy.toml",
        audit={"retention_interval_seconds": 0},
        breach={"monitor": False},
    )
    token = await demo.partner("logistics-co")
    async with (
        asgi_lifespan(other),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://shop") as second,
    ):
        assert (await second.get("/orders", headers={"authorization": f"Bearer {token}"})).status_code == 200
        await demo.app.runtime.breach.suspensions.suspend("principal", "logistics-co", by="dpo", reason="review")
        statuses = []
        for _ in range(80):
            statuses.append((await second.get("/orders", headers={"authorization": f"Bearer {token}"})).status_code)
            if statuses[-1] == 403:
                break
            await asyncio.sleep(0.05)
        assert statuses[-1] == 403
