"""Seed 004_c86c88c615e8bccd.txt through real HTTP: each test is one promise of that notice."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from privacy_middleware.audit.query import search
from privacy_middleware.breach.canaries import fake_profile
from privacy_middleware.breach.planters import RoutePlanter
from privacy_middleware.breach.report import build_report
from support.conformance import (
    assert_address_book_encrypted,
    assert_erased,
    assert_minor_refused,
    assert_rectified,
    bearer,
    consent,
    ordering_customer,
    partner_order,
    partner_view,
    set_cookie_names,
    shop_dump,
    tracked_events,
)
from support.demo import CARD, Demo

pytestmark = pytest.mark.anyio
SEED = "004_c86c88c615e8bccd"
# A PRC resident identity number with a valid check digit (GB 11643-1999 test value).
RESIDENT_ID = "11010519491231002X"


def stored_order(demo: Demo) -> dict[str, Any]:
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    try:
        [(document,)] = connection.execute("select document from orders").fetchall()
    finally:
        connection.close()
    result: dict[str, Any] = orjson.loads(document)
    return result


async def test_contact_details_never_reach_a_marketing_company(demo: Demo) -> None:
    """Sharing: "We will never sell, lease, transfer ... to ... marketing companies"; contact information
    "will not be used for commercial advertising harassment"."""
    await ordering_customer(demo)
    advertiser = await partner_view(demo, "ads-co")
    assert advertiser.status_code == 403
    assert advertiser.json()["code"] == "unknown_recipient"
    for value in ("ada@example.com", "+44 20 7946 0018", "Ada Lovelace"):
        assert value not in advertiser.text
    assert "marketing" not in demo.app.runtime.policy.recipients


async def test_id_numbers_in_order_notes_are_refused(demo: Demo) -> None:
    """Collection: "We will never actively collect sensitive personal information including identity
    certificate number"."""
    _, token = await demo.register()
    response = await demo.checkout(token, note=f"customs needs my ID {RESIDENT_ID}")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "forbidden_data_detected"
    assert "prc_resident_id" in body["kinds"]
    assert RESIDENT_ID not in response.text
    assert RESIDENT_ID not in shop_dump(demo)


async def test_identity_certificate_fields_are_refused(demo: Demo) -> None:
    """Collection: identity certificate numbers are never collected, even in a dedicated field."""
    _, token = await demo.register()
    response = await demo.checkout(token, customer={"email": "ada@example.com", "national_id": RESIDENT_ID})
    assert response.status_code == 422
    assert response.json()["code"] == "forbidden_category"
    assert RESIDENT_ID not in shop_dump(demo)


async def test_browsing_events_carry_no_identity(demo: Demo) -> None:
    """Usage: "We use anonymous processing technology for user browsing behavior data, strip all personal
    identity markers, and only conduct statistical analysis"."""
    customer, _ = await demo.register()
    await consent(demo, analytics=True)
    event = {
        "event": "product_view",
        "sku": "POT-003",
        "visitor_id": "visitor-finch",
        "customer_id": customer,
        "email": "ada@example.com",
        "device_id": "device-plover",
        "ip": "198.51.100.77",
    }
    assert (await demo.client.post("/track", json=event)).status_code == 202
    [stored] = tracked_events(demo)
    document = orjson.loads(stored)
    assert document == {"event": "product_view", "sku": "POT-003", "ip": "198.51.100.0"}


async def capture_tracking_request(demo: Demo, headers: dict[str, str]) -> dict[str, Any]:
    """What the shop receives for one consented browsing event (its endpoint replaced by a recorder)."""
    seen: list[dict[str, Any]] = []

    async def shop_endpoint(scope: Any, receive: Any, send: Any) -> None:
        seen.append({"headers": dict(scope["headers"]), "client": scope.get("client")})
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    demo.app.app = shop_endpoint
    response = await demo.client.post("/track", json={"event": "page_view"}, headers=headers)
    assert response.status_code == 202
    [received] = seen
    return received


async def test_browsing_events_reach_the_shop_without_the_device_address(demo: Demo) -> None:
    """Usage: "strip all personal identity markers": the shop sees a network, not the device."""
    await consent(demo, analytics=True)
    received = await capture_tracking_request(demo, {"x-forwarded-for": "203.0.113.9"})
    assert received["client"][0] == "198.51.100.0"
    assert b"x-forwarded-for" not in received["headers"]


async def test_browsing_events_reach_the_shop_without_the_visitors_credentials(demo: Demo) -> None:
    """Usage: "strip all personal identity markers": the bearer token and cookies that name the visitor
    do not travel with a browsing event."""
    _, token = await demo.register()
    await consent(demo, analytics=True)
    received = await capture_tracking_request(demo, bearer(token))
    assert b"authorization" not in received["headers"]
    assert b"cookie" not in received["headers"]


async def test_browsing_events_wait_for_consent(demo: Demo) -> None:
    """Usage: browsing data only for statistics; none is collected before the visitor agrees."""
    assert (await demo.client.post("/track", json={"event": "page_view"})).status_code == 204
    assert tracked_events(demo) == []


async def test_logistics_provider_receives_only_the_minimum_for_delivery(demo: Demo, httpx_mock: HTTPXMock) -> None:
    """Sharing: "the shared information is only limited to the minimum content required for business
    processing": the shop hands its whole stored order to the carrier's API, the carrier gets the parcel
    details in clear and nothing else."""
    httpx_mock.add_response(url="https://api.logistics.example/v1/shipments", status_code=201)
    _, token = await demo.register()
    assert (await demo.checkout(token)).status_code == 201
    order = stored_order(demo)
    assert order["shipping_address"]["street"].startswith("pe1.")
    async with httpx.AsyncClient(transport=demo.app.transport(httpx.AsyncHTTPTransport())) as shop_client:
        sent = await shop_client.post("https://api.logistics.example/v1/shipments", json=order)
    assert sent.status_code == 201
    [request] = httpx_mock.get_requests()
    body = orjson.loads(request.content)
    assert body["shipping_address"]["street"] == "12 Marylebone Road"
    assert body["shipping_address"]["phone"] == "+44 20 7946 0018"
    assert body["payment"]["card"] == {}
    for value in ("4242424242424242", "ada@example.com", "Please ring twice", "pe1."):
        assert value not in request.content.decode()
    assert "customer_id" not in body and body["customer"] == {}


async def test_payment_institution_does_not_receive_contact_details(demo: Demo) -> None:
    """Usage: contact information is used "only for order logistics notification, after-sales progress
    reminder and official service reply"."""
    await ordering_customer(demo)
    payer = await partner_order(demo, "pay-co")
    assert payer["payment"]["card"]["number_last4"] == "4242"
    assert "+44 20" not in str(payer) and "ada@example.com" not in str(payer)


async def test_customer_service_sees_only_what_a_service_reply_needs(demo: Demo) -> None:
    """Usage: "only authorize designated operation and customer service personnel to access necessary
    information"."""
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    staff = await demo.partner("staff")
    seen = (await demo.client.get(f"/orders/{order_id}", headers=bearer(staff))).json()
    assert seen["customer"]["email"] == "ada@example.com"
    assert seen["payment"]["card"] == {"number_last4": "4242"}
    assert "4242424242424242" not in str(seen)


async def test_minors_are_not_registered_and_nothing_is_kept(demo: Demo) -> None:
    """Collection: "We do not collect any personal data of minor users intentionally"."""
    teen = {"email": "teen@example.com", "name": "Teen", "phone": "+86 138 0013 8000", "birth_date": "2012-02-29"}
    await assert_minor_refused(demo, teen)
    assert "138 0013 8000" not in shop_dump(demo)


async def test_personalised_push_can_be_refused(demo: Demo) -> None:
    """Rights: "Users have the right to refuse to accept personalized push and marketing message
    notifications, and can turn off relevant message receiving permissions by themselves"."""
    state = (await demo.client.get("/privacy/consent")).json()
    assert state["purposes"]["personalisation"]["allowed"] is True
    assert state["purposes"]["personalisation"]["mechanism"] == "opt_out"
    await consent(demo, personalisation=False)
    refused = (await demo.client.get("/privacy/consent")).json()
    assert refused["purposes"]["personalisation"]["allowed"] is False
    response = await demo.client.get("/products", headers={"cookie": f"reco_seen=abc; {cookie_header(demo)}"})
    assert any(v.startswith("reco_seen=;") for v in response.headers.get_list("set-cookie"))


def cookie_header(demo: Demo) -> str:
    return "; ".join(f"{name}={value}" for name, value in demo.client.cookies.items())


async def test_a_global_privacy_control_signal_refuses_personalisation(demo: Demo) -> None:
    """Rights: the refusal can come from the browser's own privacy signal."""
    state = (await demo.client.get("/privacy/consent", headers={"sec-gpc": "1"})).json()
    assert state["purposes"]["personalisation"]["allowed"] is False


async def test_transaction_data_is_stored_encrypted(demo: Demo) -> None:
    """Security: "All user data is stored in encrypted professional cloud servers"."""
    _, token = await demo.register()
    assert (await demo.checkout(token)).status_code == 201
    dump = shop_dump(demo)
    for secret in ("4242424242424242", CARD, "12 Marylebone Road", '+44 20 7946 0018"}, "billing'):
        assert secret not in dump


async def test_address_book_entries_are_stored_encrypted_and_read_back_in_clear(demo: Demo) -> None:
    """Rights: "Users can manage their address information ... through personal center settings";
    Security: "All user data is stored in encrypted professional cloud servers"."""
    _, token = await demo.register()
    await assert_address_book_encrypted(demo, token)


async def test_only_the_session_cookie_is_set_before_any_choice(demo: Demo) -> None:
    """Collection: "All information collection behaviors are open and transparent"."""
    names = set_cookie_names(await demo.client.get("/products"))
    assert "session" in names and "_ga" not in names


async def test_account_closure_clears_all_account_bound_data_at_once(demo: Demo) -> None:
    """Retention: "For users who cancel account registration, we will clear all account bound personal
    information, order records and browsing data in real time"."""
    token = await ordering_customer(demo)
    closed = await demo.client.delete("/me", headers=bearer(token))
    assert closed.status_code == 204
    dump = shop_dump(demo)
    for value in ("ada@example.com", "Ada Lovelace", "Please ring twice"):
        assert value not in dump


async def test_users_can_modify_their_stored_information(demo: Demo) -> None:
    """Rights: "Users enjoy the independent right to inquire, view, modify, supplement and delete"."""
    _, token = await demo.register()
    await assert_rectified(demo, token, "phone", "+44 20 7946 0999")


async def test_historical_orders_can_be_permanently_deleted(demo: Demo) -> None:
    """Rights: "For unnecessary historical order data ... users can apply for permanent deletion"."""
    await assert_erased(demo, await ordering_customer(demo), "Please ring twice")


async def test_data_past_its_retention_period_is_deleted_or_anonymised(demo: Demo) -> None:
    """Retention: "we will automatically and permanently delete or anonymize the user's personal
    information that is no longer needed"; "We will not retain user historical data for indefinite period"."""
    from privacy_middleware.demo.adapter import DemoShopAdapter  # type: ignore[import-not-found]
    from privacy_middleware.rights.retention import RetentionRunner  # type: ignore[import-not-found]

    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    policy = demo.app.runtime.policy
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1096)
    report = await RetentionRunner(policy, DemoShopAdapter(demo.shop.engine, policy), clock=lambda: later).run()
    assert report.ok and report.changed >= 1
    order = (await demo.client.get(f"/orders/{order_id}", headers=bearer(token))).json()
    assert order["shipping_address"].get("street") != "12 Marylebone Road"
    assert order.get("note") != "Please ring twice."


async def test_a_detected_leak_is_isolated_at_once_and_the_affected_users_can_be_told(demo: Demo) -> None:
    """Security: "Once potential data security risks such as system intrusion and information leakage are
    detected, we will immediately start emergency isolation, risk investigation ... and take the initiative
    to inform affected users"."""
    runtime = demo.app.runtime
    canary = await RoutePlanter(demo.client).plant(fake_profile())
    await runtime.breach.canaries.remember(canary, batch="seed-004")
    customer, token = await demo.register()
    await demo.checkout(token)
    staff = await demo.partner("staff")
    leaked = await demo.client.get("/orders", headers=bearer(staff))
    assert leaked.status_code == 200
    for _ in range(100):  # detection follows the audit trail within a fraction of a second
        if runtime.breach.suspensions.blocks_recipient("support") or runtime.breach.suspensions.any:
            break
        await asyncio.sleep(0.05)
    isolated = await demo.client.get("/orders", headers=bearer(staff))
    assert isolated.status_code == 403 and isolated.json()["code"] == "access_suspended"
    await runtime.audit.flush()
    [finding] = await search(runtime.database, kinds=["detection_finding.canary_accessed"])
    assert finding.document is not None and finding.document["severity_id"] == 5
    report = await build_report(runtime.database, runtime.policy, finding=finding.document["uid"])
    assert sorted(report.subjects["ids"]) == sorted([canary.customer_id, customer])
    assert "Dear customer" in report.article_34 and report.notify_by is not None
