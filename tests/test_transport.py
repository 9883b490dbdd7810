"""PrivacyTransport on its own (the shop's outbound calls, outside any request): built from the
services record, with the partner's API answered by pytest-httpx."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from privacy_middleware.transport import OutboundRefused, PrivacyTransport
from support.unit_policy import ORDER, unit_policy

pytestmark = pytest.mark.anyio

SHIPMENTS = "https://api.carrier.example/shipments"


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}",
        data_dir=tmp_path,
        jwt={"secret": "t" * 40, "algorithms": ["HS256"]},
    )
    built = Runtime(settings, policy=unit_policy())
    try:
        yield built
    finally:
        await built.stop()


@pytest.fixture
async def partner(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = PrivacyTransport(runtime.services, httpx.AsyncHTTPTransport())
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


async def test_a_declared_endpoint_receives_only_what_the_recipient_may_see(
    partner: httpx.AsyncClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=SHIPMENTS, json={"tracking": "TRK1"})
    response = await partner.post(SHIPMENTS, json=ORDER)
    assert response.json() == {"tracking": "TRK1"}
    sent = httpx_mock.get_requests()[0]
    assert orjson.loads(sent.content) == {
        "id": "ord_1",
        "total": 17.0,
        "customer": {"email": "a***@example.com", "name": "Ada Lovelace"},
        "shipping_address": {"street": "1 Tea Lane", "city": "Leeds"},
    }
    assert int(sent.headers["content-length"]) == len(sent.content)


async def test_an_undeclared_endpoint_of_a_recipient_gets_nothing(partner: httpx.AsyncClient) -> None:
    with pytest.raises(OutboundRefused) as refused:
        await partner.post("https://api.carrier.example/customers", json=ORDER)
    assert refused.value.code == "outbound_not_allowed" and refused.value.status == 403


async def test_other_hosts_are_not_touched(partner: httpx.AsyncClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url="https://payments.example/charge", json={"ok": True})
    await partner.post("https://payments.example/charge", json=ORDER)
    assert orjson.loads(httpx_mock.get_requests()[0].content) == ORDER


async def test_a_subject_who_restricted_processing_is_withheld_from_the_recipient(
    runtime: Runtime, partner: httpx.AsyncClient, httpx_mock: HTTPXMock
) -> None:
    await runtime.ensure_started()
    assert runtime.rights is not None
    await runtime.rights.flags.set("cus_1", restricted=True)  # delivery is not allowed under restriction
    httpx_mock.add_response(url=SHIPMENTS, json={"tracking": "TRK2"})
    await partner.post(SHIPMENTS, json=copy.deepcopy(ORDER))
    sent = orjson.loads(httpx_mock.get_requests()[0].content)
    assert sent["customer"] == {} and sent["shipping_address"] == {}


async def test_an_objection_does_not_reach_the_delivery_contract(
    runtime: Runtime, partner: httpx.AsyncClient, httpx_mock: HTTPXMock
) -> None:
    """GDPR Art. 21 does not reach processing needed for a contract (docs/rights.md): an objection
    stored against `delivery` (contract) leaves the shipment as the carrier's grants make it."""
    await runtime.ensure_started()
    assert runtime.rights is not None
    await runtime.rights.flags.set("cus_1", add_objections=["delivery"])
    httpx_mock.add_response(url=SHIPMENTS, json={"tracking": "TRK3"})
    await partner.post(SHIPMENTS, json=copy.deepcopy(ORDER))
    sent = orjson.loads(httpx_mock.get_requests()[0].content)
    assert sent["customer"] == {"email": "a***@example.com", "name": "Ada Lovelace"}
    assert sent["shipping_address"] == {"street": "1 Tea Lane", "city": "Leeds"}
