"""Report-only mode through the demo shop: requests and responses pass unchanged, every decision
enforcement would have taken is recorded, and card numbers and CVVs stay protected all the same."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.cli import main as cli
from privacy_middleware.demo.run import build_demo, demo_policy_path
from privacy_middleware.errors import PrivacyError
from support.demo import Demo

pytestmark = pytest.mark.anyio


def policy_in_mode(tmp_path: Path, policy_lines: str, route_patch: tuple[str, str] | None = None) -> Path:
    """The demo policy with extra lines under [policy] (and optionally one route's lines patched)."""
    text = demo_policy_path().read_text()
    text = text.replace(
        'contact = "privacy@demo-tea-shop.example"\n', f'contact = "privacy@demo-tea-shop.example"\n{policy_lines}\n'
    )
    if route_patch is not None:
        assert route_patch[0] in text
        text = text.replace(route_patch[0], route_patch[1])
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


async def demo_with(tmp_path: Path, policy: Path, asgi_lifespan: Any) -> AsyncIterator[Demo]:
    app, shop = build_demo(tmp_path, policy_file=policy, audit={"retention_interval_seconds": 0})
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.20", 40000)), base_url="http://shop"
        ) as client,
    ):
        yield Demo(app, shop, client, tmp_path)


@pytest.fixture
async def reporting(tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[Demo]:
    async for demo in demo_with(tmp_path, policy_in_mode(tmp_path, 'mode = "report"'), asgi_lifespan):
        yield demo


def shop_dump(demo: Demo) -> str:
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


async def would_have(demo: Demo) -> list[dict[str, Any]]:
    await demo.app.runtime.audit.flush()
    records = await search(demo.app.runtime.database, kinds=["api_activity.would_have"], limit=1000)
    return [record.detail for record in records]


async def test_checkout_in_report_mode_keeps_addresses_but_never_the_card(reporting: Demo) -> None:
    _, token = await reporting.register()
    response = await reporting.checkout(token)
    assert response.status_code == 201, response.text
    dump = shop_dump(reporting)
    assert "12 Marylebone Road" in dump  # report mode: the address reaches the shop as sent
    assert "4242424242424242" not in dump and "4242 4242 4242 4242" not in dump  # but never the card
    assert '"cvv"' not in dump
    reported = [d for d in await would_have(reporting) if d["capability"] == "request_fields"]
    assert len(reported) == 1
    assert reported[0]["route"] == "POST /checkout"
    assert reported[0]["decision"] == "rewrite_request"
    assert "$.shipping_address.street" in reported[0]["fields"]
    assert "$.payment.card.number" in reported[0]["fields"]
    text = orjson.dumps(reported).decode()
    assert "Marylebone" not in text and "4242" not in text  # paths, never values


async def test_free_text_card_numbers_are_refused_in_report_mode_too(reporting: Demo) -> None:
    _, token = await reporting.register()
    response = await reporting.checkout(token, note="my card is 4242 4242 4242 4242")
    assert response.status_code == 422
    assert response.json()["code"] == "forbidden_data_detected"
    assert "4242" not in shop_dump(reporting)


async def test_tracking_without_consent_passes_and_is_reported(reporting: Demo) -> None:
    response = await reporting.client.post("/track", json={"visitor_id": "v-1", "event": "view", "ip": "203.0.113.9"})
    assert response.status_code == 202, response.text  # the shop answered: nothing was dropped
    decisions = {(d["capability"], d["decision"], d.get("code")) for d in await would_have(reporting)}
    assert ("tracking", "block", "status_204") in decisions


async def test_partner_reads_the_whole_order_and_the_disclosure_is_reported(reporting: Demo) -> None:
    _, token = await reporting.register()
    order_id = (await reporting.checkout(token)).json()["id"]
    carrier = await reporting.partner("logistics-co")
    response = await reporting.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {carrier}"})
    assert response.status_code == 200
    order = response.json()
    assert order["billing_address"]["street"] == "12 Marylebone Road"  # report mode: unchanged
    assert not re.search(r"4242 ?4242 ?4242 ?4242", response.text)  # the card number never leaves in clear
    reported = [d for d in await would_have(reporting) if d["capability"] == "response_fields"]
    assert reported and reported[-1]["recipient"] == "logistics"
    assert "$.billing_address" in reported[-1]["fields"] or "$.billing_address.street" in reported[-1]["fields"]
    await reporting.app.runtime.audit.flush()
    [access] = [
        r
        for r in await search(reporting.app.runtime.database, kinds=["api_activity.data_disclose"])
        if r.detail.get("recipient") == "logistics"
    ]
    # The access log says what really left: the billing address too.
    assert "user.contact.address.billing" in access.detail["categories"]


async def test_a_route_can_enforce_inside_a_reporting_policy(tmp_path: Path, asgi_lifespan: Any) -> None:
    patch = (
        'path = "/checkout"\npurpose = "order_fulfilment"\n',
        'path = "/checkout"\npurpose = "order_fulfilment"\nmode = "enforce"\n',
    )
    policy = policy_in_mode(tmp_path, 'mode = "report"', patch)
    async for demo in demo_with(tmp_path, policy, asgi_lifespan):
        _, token = await demo.register()
        assert (await demo.checkout(token)).status_code == 201
        assert "12 Marylebone Road" not in shop_dump(demo)
        assert not [d for d in await would_have(demo) if d["route"] == "POST /checkout"]


async def test_one_capability_can_report_while_the_rest_enforces(tmp_path: Path, asgi_lifespan: Any) -> None:
    policy = policy_in_mode(tmp_path, 'capability_modes = { tracking = "report" }')
    async for demo in demo_with(tmp_path, policy, asgi_lifespan):
        assert (await demo.client.post("/track", json={"visitor_id": "v", "event": "e"})).status_code == 202
        _, token = await demo.register()
        assert (await demo.checkout(token)).status_code == 201
        assert "12 Marylebone Road" not in shop_dump(demo)  # request fields still enforced


async def test_report_command_summarises_what_enforcing_would_change(
    reporting: Demo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await reporting.register()
    await reporting.checkout(token)
    await reporting.client.post("/track", json={"visitor_id": "v-1", "event": "view"})
    await reporting.app.runtime.audit.flush()
    runtime = reporting.app.runtime
    monkeypatch.setenv("PRIVACY_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("PRIVACY_POLICY_FILE", str(runtime.settings.policy_file))
    monkeypatch.setenv("PRIVACY_DATA_DIR", str(runtime.settings.data_dir))
    assert await anyio.to_thread.run_sync(cli, ["report", "--since", "1h", "--json"]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    by_key = {(row["route"], row["capability"], row["decision"]): row for row in rows["changes"]}
    assert by_key[("POST /checkout", "request_fields", "rewrite_request")]["count"] == 1
    assert by_key[("POST /track", "tracking", "block")]["count"] == 1
    assert "$.shipping_address.street" in by_key[("POST /checkout", "request_fields", "rewrite_request")]["fields"]
    assert await anyio.to_thread.run_sync(cli, ["report", "--since", "1h"]) == 0
    table = capsys.readouterr().out
    assert "POST /checkout" in table and "rewrite_request" in table


async def test_breach_containment_is_never_report_only(reporting: Demo) -> None:
    """Containment stops a caller during an incident; report mode is for rolling a policy out, so a
    suspended partner is refused on a reporting route (and its outbound transfers with it), and
    nothing is recorded as a mere "would have" (docs/rollout.md)."""
    _, token = await reporting.register()
    order = await reporting.checkout(token)
    assert order.status_code == 201, order.text
    partner = await reporting.partner("logistics-co")
    headers = {"authorization": f"Bearer {partner}"}
    path = f"/orders/{order.json()['id']}"
    assert (await reporting.client.get(path, headers=headers)).status_code == 200
    suspensions = reporting.app.runtime.breach.suspensions
    await suspensions.suspend("principal", "logistics-co", by="dpo", reason="review")
    refused = await reporting.client.get(path, headers=headers)
    assert refused.status_code == 403 and refused.json()["code"] == "access_suspended"
    assert not [d for d in await would_have(reporting) if d.get("code") == "access_suspended"]

    await suspensions.suspend("recipient", "logistics", by="dpo", reason="review")
    async with httpx.AsyncClient(transport=reporting.app.transport(httpx.AsyncHTTPTransport())) as client:
        with pytest.raises(PrivacyError) as blocked:
            await client.post("https://api.logistics.example/v1/shipments", json={"id": "ord_1"})
    assert blocked.value.code == "access_suspended"
