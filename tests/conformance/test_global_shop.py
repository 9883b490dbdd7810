"""Seed 002_4a9822b9d86f88a8.txt through real HTTP: each test is one promise of that notice."""

from __future__ import annotations

import pytest

from support.conformance import (
    assert_address_book_encrypted,
    assert_erased,
    assert_rectified,
    bearer,
    consent,
    exported,
    flushed_access_log,
    ordering_customer,
    partner_order,
    partner_view,
    set_cookie_names,
    shop_dump,
    tracked_events,
)
from support.demo import CARD, Demo

pytestmark = pytest.mark.anyio
SEED = "002_4a9822b9d86f88a8"


async def test_data_access_is_logged_for_full_traceability(demo: Demo) -> None:
    """§3 "We have established perfect data access logs and operation records to realize full-process
    traceability of data operation behaviors"."""
    customer, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    await partner_view(demo, "logistics-co")
    staff = await demo.partner("staff")
    await demo.client.get(f"/orders/{order_id}", headers=bearer(staff))
    log = await flushed_access_log(demo, token)
    assert log["subject"] == customer
    readers = {(d["recipient"], d["purpose"]) for d in log["disclosures"]}
    assert ("logistics", "delivery") in readers
    assert any(recipient == "support" for recipient, _ in readers)
    assert "Marylebone" not in str(log) and "4242424242424242" not in str(log)


async def test_only_authorised_personnel_see_personal_data_within_their_job(demo: Demo) -> None:
    """§3 "only authorized professional operation and service personnel can access user information
    within the scope of job requirements"."""
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    staff = await demo.partner("staff")
    seen = (await demo.client.get(f"/orders/{order_id}", headers=bearer(staff))).json()
    assert seen["customer"]["email"] == "ada@example.com"
    assert seen["payment"]["card"]["number"] == "****4242"
    operations = demo.shop.token(
        {"sub": "ops-1", "recipient": "operations", "purpose": "order_fulfilment", "scope": "orders:read"}
    )
    maintained = await demo.client.get(f"/orders/{order_id}", headers=bearer(operations))
    assert maintained.status_code == 200
    for value in ("ada@example.com", "Ada Lovelace", "Marylebone", "4242424242424242", "+44 20"):
        assert value not in maintained.text
    assert maintained.json()["payment"]["card"] == {}


async def test_personal_information_is_never_sold_to_a_third_party(demo: Demo) -> None:
    """§4 "will never sell, rent, trade or illegally disclose user personal information"."""
    await ordering_customer(demo)
    advertiser = await partner_view(demo, "ads-co")
    assert advertiser.status_code == 403
    assert advertiser.json()["code"] == "unknown_recipient"
    assert "Marylebone" not in advertiser.text and "ada@example.com" not in advertiser.text


async def test_service_providers_cannot_use_data_for_other_purposes(demo: Demo) -> None:
    """§4 "Third-party institutions can only use user information to complete the entrusted service
    work, and cannot use it for any other purposes"."""
    await ordering_customer(demo)
    repurposed = demo.shop.token(
        {"sub": "logistics-co", "recipient": "logistics", "purpose": "analytics", "scope": "orders:read"}
    )
    response = await demo.client.get("/orders", headers=bearer(repurposed))
    assert response.status_code == 403
    assert response.json()["code"] == "purpose_not_allowed"


async def test_logistics_and_payment_providers_receive_only_what_their_service_needs(demo: Demo) -> None:
    """§4 "limit their access and use scope of user information"."""
    await ordering_customer(demo)
    carrier = await partner_order(demo, "logistics-co")
    assert carrier["shipping_address"]["postal_code"] == "NW1 5LR"
    assert carrier["payment"]["card"] == {} and carrier["customer"] == {}
    payer = await partner_order(demo, "pay-co")
    assert payer["payment"]["card"]["number_last4"] == "4242"
    assert payer["shipping_address"] == {} and "note" not in payer


async def test_user_information_is_stored_encrypted(demo: Demo) -> None:
    """§3 "All user information is stored through encrypted server system"."""
    _, token = await demo.register()
    assert (await demo.checkout(token)).status_code == 201
    dump = shop_dump(demo)
    for secret in ("4242424242424242", CARD, "12 Marylebone Road"):
        assert secret not in dump
    assert '"cvv"' not in dump
    await assert_address_book_encrypted(demo, token)


async def test_browsing_statistics_need_consent_and_carry_no_identity(demo: Demo) -> None:
    """§1 access data is used "to count website operation data ... without involving any sensitive
    private data of users"."""
    event = {
        "event": "product_view",
        "visitor_id": "visitor-osprey",
        "customer_id": "cus_0123456789abcdef",
        "ip": "203.0.113.50",
        "sku": "TEA-001",
    }
    assert (await demo.client.post("/track", json=event)).status_code == 204
    assert tracked_events(demo) == []
    await consent(demo, analytics=True)
    assert (await demo.client.post("/track", json=event)).status_code == 202
    [stored] = tracked_events(demo)
    for identity in ("visitor-osprey", "cus_0123456789abcdef", "203.0.113.50"):
        assert identity not in stored
    assert "TEA-001" in stored and "203.0.113.0" in stored


async def test_irrelevant_private_information_is_not_collected(demo: Demo) -> None:
    """§1 "We will not actively collect any irrelevant private information"."""
    _, token = await demo.register()
    refused = await demo.checkout(token, customer={"email": "ada@example.com", "national_id": "123-45-6789"})
    assert refused.status_code == 422
    assert refused.json()["code"] == "forbidden_category"
    in_note = await demo.checkout(token, note="SSN 123-45-6789 for customs")
    assert in_note.status_code == 422
    assert "123-45-6789" not in shop_dump(demo)


async def test_session_cookie_works_and_statistics_cookie_waits_for_consent(demo: Demo) -> None:
    """§1 basic access data for the shopping service; statistics only once agreed."""
    names = set_cookie_names(await demo.client.get("/products"))
    assert "session" in names and "_ga" not in names
    await consent(demo, analytics=True)
    assert "_ga" in set_cookie_names(await demo.client.get("/products"))


async def test_no_data_is_obtained_through_hidden_advertising_cookies(demo: Demo) -> None:
    """§1 "nor secretly obtain user data through hidden channels": the shop's advertising pixel cookie,
    which this notice never mentions, is not set."""
    assert "_fbp" not in set_cookie_names(await demo.client.get("/products"))


async def test_updated_terms_are_published_with_their_version(demo: Demo) -> None:
    """§6 "All updated privacy policy terms will be officially released and displayed"."""
    served = (await demo.client.get("/privacy/policy")).json()
    assert (served["version"], served["effective_date"]) == ("2026.1", "2026-02-01")
    assert served["policy"]["recipients"].keys() == {
        "logistics",
        "payment",
        "analytics",
        "operations",
        "support",
    }


async def test_users_can_check_their_account_and_order_data(demo: Demo) -> None:
    """§5 "Users can independently browse, check, modify and update their personal account information
    and order data"."""
    await exported(demo, await ordering_customer(demo))


async def test_users_can_correct_their_data(demo: Demo) -> None:
    """§5 "query, correct or clear personal data records"."""
    _, token = await demo.register()
    await assert_rectified(demo, token, "name", "Ada King")


async def test_users_can_have_their_records_cleared(demo: Demo) -> None:
    """§5 "For historical browsing data and service records, users can put forward clearing requirements"."""
    await assert_erased(demo, await ordering_customer(demo), "ada@example.com", "Ada Lovelace")
