"""Seed 001_58e955c94cff9ce2.txt through real HTTP: each test is one promise of that notice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from privacy_middleware.errors import PrivacyError
from privacy_middleware.fields.card_sentinel import pans_in
from support.conformance import (
    assert_address_book_encrypted,
    assert_minor_refused,
    assert_rectified,
    bearer,
    consent,
    exported,
    flushed_access_log,
    ordering_customer,
    partner_order,
    partner_view,
    receipt_claims,
    revised_policy,
    seed_demo,
    set_cookie_names,
    shop_dump,
    tracked_events,
    working_days_between,
)
from support.demo import CARD, Demo

pytestmark = pytest.mark.anyio
SEED = "001_58e955c94cff9ce2"


async def test_delivery_information_is_shared_with_the_logistics_company_only(demo: Demo) -> None:
    """Sharing (1): "we will share your order delivery information with logistics and delivery companies"."""
    await ordering_customer(demo)
    carrier = await partner_order(demo, "logistics-co")
    assert carrier["shipping_address"]["street"] == "12 Marylebone Road"
    assert carrier["shipping_address"]["phone"] == "+44 20 7946 0018"
    assert carrier["payment"]["card"] == {} and carrier["customer"] == {} and "note" not in carrier


async def test_payment_information_is_shared_with_the_payment_institution_only(demo: Demo) -> None:
    """Sharing (1): "Share your payment information with payment institutions to complete payment"."""
    await ordering_customer(demo)
    payer = await partner_order(demo, "pay-co")
    assert payer["payment"]["card"]["number"] == "4242424242424242"
    assert payer["shipping_address"] == {} and payer["customer"] == {}


async def test_analysis_and_marketing_partners_receive_no_directly_identifying_data(demo: Demo) -> None:
    """Sharing (1): "We will only share necessary information" with data analysis and marketing partners."""
    customer, token = await demo.register()
    await demo.checkout(token)
    for partner in ("stats-co", "ads-co"):
        seen = (await partner_view(demo, partner)).json()["orders"][0]
        assert customer not in str(seen)
        for value in ("ada@example.com", "Ada Lovelace", "Marylebone", "4242424242424242", "+44 20"):
            assert value not in str(seen)
        assert seen["payment"]["card"] == {}


async def test_no_transfer_to_a_company_the_policy_does_not_name(demo: Demo) -> None:
    """Transfer (2): "We will not transfer your personal information to any other company ... unless"."""
    await ordering_customer(demo)
    broker = demo.shop.token(
        {"sub": "data-broker", "recipient": "data_broker", "purpose": "marketing", "scope": "orders:read"}
    )
    response = await demo.client.get("/orders", headers=bearer(broker))
    assert response.status_code == 403
    assert response.json()["code"] == "unknown_recipient"
    assert "Marylebone" not in response.text


async def test_marketing_partner_calls_wait_for_explicit_consent(demo: Demo, httpx_mock: HTTPXMock) -> None:
    """Transfer (2) "Obtaining your explicit consent in advance"; marketing partners only with consent."""
    httpx_mock.add_response(url="https://ads.marketing.example/conversions", status_code=200)
    outcomes: list[str] = []

    async def shop_endpoint(scope: Any, receive: Any, send: Any) -> None:
        async with httpx.AsyncClient(transport=demo.app.transport(httpx.AsyncHTTPTransport())) as partner:
            try:
                await partner.post("https://ads.marketing.example/conversions", json={"event": "purchase"})
                outcomes.append("sent")
            except PrivacyError as error:
                outcomes.append(error.code)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    demo.app.app = shop_endpoint
    await demo.client.get("/thank-you")
    await consent(demo, marketing=True)
    await demo.client.get("/thank-you")
    assert outcomes == ["consent_required", "sent"]
    assert len(httpx_mock.get_requests()) == 1


async def test_withdrawing_consent_stops_collection_and_expires_cookies(demo: Demo) -> None:
    """Your rights: "After withdrawing your consent, we will no longer continue to collect ... relevant
    information"."""
    await consent(demo, analytics=True)
    await demo.client.get("/products")
    assert (await demo.client.post("/track", json={"event": "page_view"})).status_code == 202
    withdrawn = await demo.client.delete("/privacy/consent", headers={"x-privacy-consent": "1"})
    assert withdrawn.status_code == 200
    assert any(v.startswith("_ga=;") for v in withdrawn.headers.get_list("set-cookie"))
    assert (await demo.client.post("/track", json={"event": "page_view"})).status_code == 204
    assert len(tracked_events(demo)) == 1


async def test_device_identifiers_and_ip_in_logs_never_reach_the_shop_in_clear(demo: Demo) -> None:
    """Device information and log information are used for analysis only as pseudonyms."""
    await consent(demo, analytics=True)
    event = {
        "event": "page_view",
        "device_id": "35-209900-176148-1",
        "ip": "198.51.100.77",
        "visitor_id": "visitor-heron",
        "page": "/shoes",
        "dwell_ms": 5400,
    }
    assert (await demo.client.post("/track", json=event)).status_code == 202
    [stored] = tracked_events(demo)
    for identity in ("35-209900-176148-1", "198.51.100.77", "visitor-heron"):
        assert identity not in stored
    assert "/shoes" in stored and "5400" in stored


async def test_a_pseudonym_that_happens_to_hold_a_card_like_digit_run_is_still_forwarded(demo: Demo) -> None:
    """A pseudonym is hex, and about one in 5,000 holds a Luhn-valid run of 13 to 19 digits. The
    card check after the tracking rewrite refused such an event (422) for ever for that visitor."""
    await consent(demo, analytics=True)
    runtime = demo.app.runtime
    recipients = [r for r in runtime.policy.recipients.values() if "analytics" in r.purposes]
    scope = (recipients[0].pseudonym_scope if recipients else "") or "tracking:analytics"
    pseudonym = runtime.fields.pseudonymiser.pseudonym
    visitor = next(f"visitor-{n}" for n in range(1_000_000) if next(pans_in(pseudonym(f"visitor-{n}", scope)), None))
    # the device id's 15 digits send the body past the card prefilter, to the check of each value
    event = {"event": "page_view", "device_id": "35-209900-176148-1", "visitor_id": visitor, "page": "/shoes"}
    assert (await demo.client.post("/track", json=event)).status_code == 202
    [stored] = tracked_events(demo)
    assert pseudonym(visitor, scope) in stored and visitor not in stored
    # a card number the visitor sends in a field that is not pseudonymised is still refused
    refused = await demo.client.post("/track", json={**event, "page": CARD})
    assert refused.status_code == 422 and refused.json()["code"] == "card_data_on_unprotected_route"


async def test_cookies_for_login_and_cart_work_without_consent_others_wait(demo: Demo) -> None:
    """Cookie information: cookies remember login status and cart; tracking cookies need consent."""
    assert set_cookie_names(await demo.client.get("/products")) == {"session"}
    await consent(demo, analytics=True, marketing=True)
    assert {"_ga", "_fbp"} <= set_cookie_names(await demo.client.get("/products"))


async def test_security_monitoring_records_logins_and_stops_attacks(demo: Demo) -> None:
    """Security and risk prevention: "prevent fraud, malicious attacks, identity theft"."""
    _, token = await demo.register()
    assert (
        await demo.client.post("/auth/login", json={"email": "ada@example.com", "password": "correct horse battery"})
    ).status_code == 200
    log = await flushed_access_log(demo, token)
    assert [entry["outcome"] for entry in log["logins"]] == ["success"]
    for _ in range(10):
        await demo.client.post("/auth/login", json={"email": "ada@example.com", "password": "stolen?"})
    blocked = await demo.client.post(
        "/auth/login", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert blocked.status_code == 429


async def test_sensitive_information_is_stored_encrypted(demo: Demo) -> None:
    """Security protection measures: "using encryption technology to encrypt storage ... of sensitive
    information"."""
    _, token = await demo.register()
    assert (await demo.checkout(token)).status_code == 201
    dump = shop_dump(demo)
    for secret in ("4242424242424242", CARD, "12 Marylebone Road"):
        assert secret not in dump
    assert '"cvv"' not in dump
    await assert_address_book_encrypted(demo, token)


async def test_card_numbers_in_order_notes_are_refused(demo: Demo) -> None:
    """Order notes are collected "to meet your specific needs", not to carry payment data."""
    _, token = await demo.register()
    response = await demo.checkout(token, note="use card 4111 1111 1111 1111 if the first fails")
    assert response.status_code == 422
    assert response.json()["code"] == "forbidden_data_detected"
    assert "4111" not in response.text and "4111 1111" not in shop_dump(demo)


async def test_minors_cannot_register(demo: Demo) -> None:
    """Minors: "Our independent website mainly provides services to adults ... will not actively collect"."""
    await assert_minor_refused(demo, {"email": "kid@example.com", "name": "Kid", "birth_date": "2015-06-01"})
    adult = await demo.client.post(
        "/auth/register",
        json={"email": "adult@example.com", "password": "correct horse battery", "birth_date": "1990-01-01"},
    )
    assert adult.status_code == 201


async def test_revised_policy_is_published_with_its_effective_date_and_history(
    tmp_path: Path, asgi_lifespan: Any
) -> None:
    """Changes to Privacy Policy: "The revised privacy policy will be published ... on the effective date"."""
    data = tmp_path / "shop"
    async with seed_demo(SEED, data, asgi_lifespan) as first:
        assert (await first.client.get("/privacy/policy")).json()["version"] == "2026.1"
    revision = revised_policy(SEED, tmp_path / "revised.toml", "2026.2", "2026-06-01")
    async with seed_demo(SEED, data, asgi_lifespan, policy_file=revision) as second:
        served = (await second.client.get("/privacy/policy")).json()
    assert (served["version"], served["effective_date"]) == ("2026.2", "2026-06-01")
    assert [(h["version"], h["effective_date"]) for h in served["history"]] == [
        ("2026.1", "2026-01-15"),
        ("2026.2", "2026-06-01"),
    ]


async def test_a_significant_change_asks_for_consent_again(tmp_path: Path, asgi_lifespan: Any) -> None:
    """Transfer (2): "we will require the recipient to obtain your consent again" after a major change."""
    data = tmp_path / "shop"
    async with seed_demo(SEED, data, asgi_lifespan) as first:
        await consent(first, analytics=True)
        cookies = dict(first.client.cookies)
        assert (await first.client.post("/track", json={"event": "page_view"})).status_code == 202
    revision = revised_policy(SEED, tmp_path / "revised.toml", "2026.2", "2026-06-01")
    async with seed_demo(SEED, data, asgi_lifespan, policy_file=revision) as second:
        second.client.cookies.update(cookies)
        after = await second.client.post("/track", json={"event": "page_view"})
        state = (await second.client.get("/privacy/consent")).json()
    assert after.status_code == 204
    assert after.headers.get("privacy-reconsent") == "required"
    assert state["purposes"]["analytics"]["allowed"] is False


async def test_customer_can_access_and_copy_their_information(demo: Demo) -> None:
    """Access rights and "Right to obtain a copy of your personal information"."""
    token = await ordering_customer(demo)
    courier = await demo.partner("logistics-co")
    await demo.client.get("/orders", headers=bearer(courier))
    await demo.app.runtime.audit.flush()
    assert "logistics" in (await exported(demo, token)).text


async def test_copy_can_be_transferred_directly_to_a_third_party(demo: Demo, httpx_mock: HTTPXMock) -> None:
    """ "we can directly transfer a copy of your personal information to a third party designated by you"."""
    httpx_mock.add_response(url="https://receiver.example/import", status_code=202)
    token = await ordering_customer(demo)
    response = await demo.client.post(
        "/privacy/me/export/transfer", json={"url": "https://receiver.example/import"}, headers=bearer(token)
    )
    assert response.status_code in (200, 202)
    [sent] = httpx_mock.get_requests()
    assert sent.method == "POST" and b"Marylebone" in sent.content


async def test_customer_can_correct_their_information(demo: Demo) -> None:
    """Correction right: "you have the right to request us to make corrections"."""
    _, token = await demo.register()
    await assert_rectified(demo, token, "name", "Ada King")


async def test_erasure_under_a_legal_hold_anonymises_instead(demo: Demo) -> None:
    """Delete right: "we may not be able to completely delete your information, but we will anonymize it"."""
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    erased = await demo.client.post("/privacy/me/erasure", headers=bearer(token))
    assert erased.status_code == 200, erased.text
    claims = receipt_claims(erased.json()["receipt"])
    assert f"order:{order_id}" in claims["shop"]["anonymised"]
    assert any(kept["item"] == f"order:{order_id}" for kept in claims["shop"]["kept"])
    dump = shop_dump(demo)
    assert "ada@example.com" not in dump and "Ada Lovelace" not in dump
    assert "17.0" in dump  # the order total stays for tax, no longer about anyone


async def test_processing_can_be_restricted(demo: Demo) -> None:
    """Restriction of processing rights: processing stops while a dispute is checked."""
    token = await ordering_customer(demo)
    assert (await demo.client.post("/privacy/me/restriction", headers=bearer(token))).status_code in (
        200,
        202,
    )
    carrier = await partner_order(demo, "logistics-co")
    assert "Marylebone" not in str(carrier)


async def test_requests_are_due_within_ten_working_days(demo: Demo) -> None:
    """Contact Us: "process your issue or feedback within 10 working days"."""
    _, token = await demo.register()
    assert (await demo.client.get("/privacy/me/export", headers=bearer(token))).status_code == 200
    [request] = (await demo.client.get("/privacy/me/requests", headers=bearer(token))).json()["requests"]
    created = dt.datetime.fromisoformat(request["created_at"]).date()
    due = dt.datetime.fromisoformat(request["due_at"]).date()
    assert working_days_between(created, due) == 10
