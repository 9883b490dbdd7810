"""Seed 000_c708a063f9f7303d.txt through real HTTP: each test is one promise of that notice."""

from __future__ import annotations

import pytest

from privacy_middleware.audit.query import search
from support.conformance import (
    CLIENT_IP,
    assert_address_book_encrypted,
    assert_erased,
    assert_rectified,
    bearer,
    consent,
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
SEED = "000_c708a063f9f7303d"
PASSWORD = "correct horse battery"


async def test_ip_and_login_history_are_recorded_to_protect_the_account(demo: Demo) -> None:
    """§3 "We will record your IP address and login history to protect your account"."""
    customer, token = await demo.register()
    ok = await demo.client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    bad = await demo.client.post("/auth/login", json={"email": "ada@example.com", "password": "wrong guess"})
    assert (ok.status_code, bad.status_code) == (200, 401)
    log = await flushed_access_log(demo, token)
    assert log["subject"] == customer
    assert [entry["outcome"] for entry in log["logins"]] == ["success"]
    assert log["logins"][0]["network"] == "198.51.100.0/24"
    # The raw address is kept for security, in the audit store, and never shown back in clear.
    assert CLIENT_IP not in str(log)
    attempts = await search(demo.app.runtime.database, kinds=["authentication.logon"])
    assert sorted(a.document["status"] for a in attempts if a.document) == ["failure", "success"]


async def test_suspicious_logins_are_detected_and_stopped(demo: Demo) -> None:
    """§3 "detect suspicious logins": repeated failures lock the pair (account, network)."""
    await demo.register()
    for _ in range(10):
        await demo.client.post("/auth/login", json={"email": "ada@example.com", "password": "guess"})
    locked = await demo.client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_attempts"


async def test_login_history_and_ip_are_used_only_for_security(demo: Demo) -> None:
    """§3 "We will not use the account information for any purpose other than the above purposes":
    no recipient of the policy is granted IP addresses, credentials or login history."""
    policy = demo.app.runtime.policy
    for name, recipient in policy.recipients.items():
        for category in recipient.sees:
            assert not category.startswith(("user.device", "user.authorization")), (name, category)
    await ordering_customer(demo)
    for partner in ("logistics-co", "pay-co", "stats-co", "ads-co"):
        seen = await partner_view(demo, partner)
        assert seen.status_code == 200
        assert CLIENT_IP not in seen.text and "correct horse" not in seen.text


async def test_account_data_is_not_shown_to_analytics_or_advertising(demo: Demo) -> None:
    """§3 account information (name, e-mail) is used for the account, not handed to trackers."""
    token = await ordering_customer(demo)
    for partner in ("stats-co", "ads-co"):
        seen = (await partner_view(demo, partner)).json()["orders"][0]
        text = str(seen)
        assert "ada@example.com" not in text and "Ada Lovelace" not in text and "4242424242424242" not in text
        assert seen["payment"]["card"] == {}
        assert seen["customer_id"] != (await demo.client.get("/me", headers=bearer(token))).json()["id"]


async def test_sensitive_payment_and_address_data_are_encrypted_at_rest(demo: Demo) -> None:
    """§6 "We encrypt the transmitted data and statically encrypt the sensitive data"."""
    _, token = await demo.register()
    response = await demo.checkout(token)
    assert response.status_code == 201, response.text
    dump = shop_dump(demo)
    for secret in ("4242424242424242", CARD, "12 Marylebone Road"):
        assert secret not in dump
    assert '"cvv"' not in dump
    assert response.json()["shipping_address"]["street"] == "12 Marylebone Road"
    await assert_address_book_encrypted(demo, token)


async def test_payment_details_go_to_the_payment_processor_and_address_to_the_carrier_only(
    demo: Demo,
) -> None:
    """§1 "Order processing: verifying your payment and arranging shipments" with minimal authorisation."""
    await ordering_customer(demo)
    carrier = await partner_order(demo, "logistics-co")
    assert carrier["shipping_address"]["street"] == "12 Marylebone Road"
    assert carrier["payment"]["card"] == {} and carrier["billing_address"] == {}
    payer = await partner_order(demo, "pay-co")
    assert payer["payment"]["card"]["number"] == "4242424242424242"
    assert payer["shipping_address"] == {} and "note" not in payer


async def test_staff_access_is_limited_to_what_order_handling_needs(demo: Demo) -> None:
    """§6 "Data access is limited by the principles of authentication and minimal authorisation"."""
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    staff = await demo.partner("staff")
    seen = (await demo.client.get(f"/orders/{order_id}", headers=bearer(staff))).json()
    assert seen["payment"]["card"]["number"] == "****4242"
    anonymous = await demo.client.get(f"/orders/{order_id}")
    assert anonymous.status_code == 401


async def test_sensitive_data_is_not_collected(demo: Demo) -> None:
    """§1 "We will not collect sensitive data": ID numbers are refused in fields and in free text."""
    _, token = await demo.register()
    in_field = await demo.checkout(token, customer={"email": "ada@example.com", "national_id": "X1234567"})
    assert in_field.status_code == 422
    assert in_field.json()["code"] == "forbidden_category"
    in_note = await demo.checkout(token, note="my id is 11010519491231002X")
    assert in_note.status_code == 422
    assert in_note.json()["code"] == "forbidden_data_detected"
    assert "11010519491231002X" not in in_note.text and "X1234567" not in in_field.text
    assert "11010519491231002X" not in shop_dump(demo)


async def test_analytics_tracking_runs_only_with_consent_and_without_identity(demo: Demo) -> None:
    """§2 analytical cookies and tracking tools; §1 usage data for service improvement."""
    event = {
        "event": "click",
        "visitor_id": "visitor-kestrel",
        "ip": "198.51.100.77",
        "page": "/phones",
        "email": "ada@example.com",
    }
    assert (await demo.client.post("/track", json=event)).status_code == 204
    assert tracked_events(demo) == []
    await consent(demo, analytics=True)
    assert (await demo.client.post("/track", json=event)).status_code == 202
    [stored] = tracked_events(demo)
    for identity in ("visitor-kestrel", "198.51.100.77", "ada@example.com"):
        assert identity not in stored
    assert "/phones" in stored


async def test_functional_cookies_are_set_and_tracking_cookies_wait_for_consent(demo: Demo) -> None:
    """§2 functional cookies keep the login and basket; analytical and advertising ones need consent."""
    products = await demo.client.get("/products")
    assert set_cookie_names(products) == {"session"}
    await consent(demo, analytics=True)
    assert set_cookie_names(await demo.client.get("/products")) >= {"_ga"}
    assert "_fbp" not in set_cookie_names(await demo.client.get("/products"))


async def test_marketing_needs_consent_and_can_be_opted_out_at_any_time(demo: Demo) -> None:
    """§1 "With your consent ... You can choose to opt out of marketing activities at any time"."""
    state = (await demo.client.get("/privacy/consent")).json()
    assert state["purposes"]["marketing"]["allowed"] is False
    await consent(demo, marketing=True)
    assert "_fbp" in set_cookie_names(await demo.client.get("/products"))
    await consent(demo, marketing=False)
    after = await demo.client.get("/products")
    assert "_fbp" not in {name for name in set_cookie_names(after)} or any(
        v.startswith("_fbp=;") for v in after.headers.get_list("set-cookie")
    )
    assert (await demo.client.get("/privacy/consent")).json()["purposes"]["marketing"]["allowed"] is False


async def test_policy_version_is_the_date_of_the_last_update(demo: Demo) -> None:
    """§7 "The change of the privacy policy is subject to the date of the website update"."""
    served = (await demo.client.get("/privacy/policy")).json()
    assert served["effective_date"] == "2026-04-10"
    assert [entry["version"] for entry in served["history"]] == ["2026-04-10"]


async def test_retention_periods_are_declared_for_usage_ip_and_orders(demo: Demo) -> None:
    """§5 data is kept only as long as its purpose or Chinese law requires."""
    policy = demo.app.runtime.policy
    rules = {rule.category: rule for rule in policy.retention}
    assert rules["user.behavior.browsing"].days == 396
    assert rules["user.device.ip_address"].days == 30
    assert policy.audit.raw_ip_days == 30
    assert {hold.purpose for hold in policy.rights.legal_holds} == {"legal_obligation"}


async def test_account_information_can_be_updated_at_any_time(demo: Demo) -> None:
    """§3 "You can update or delete this information at any time through your account settings"."""
    _, token = await demo.register()
    await assert_rectified(demo, token, "name", "Ada King")


async def test_account_information_can_be_deleted_at_any_time(demo: Demo) -> None:
    """§3 and §8 "You can contact us at any time ... to delete any information and data"."""
    await assert_erased(demo, await ordering_customer(demo), "ada@example.com", "Ada Lovelace")


async def test_marketing_contact_data_is_kept_only_until_unsubscribe(demo: Demo) -> None:
    """§5 "we will keep your contact information and preference data until you unsubscribe"."""
    _, token = await demo.register()
    await consent(demo, marketing=True)
    objection = await demo.client.post("/privacy/me/objection", json={"purposes": ["marketing"]}, headers=bearer(token))
    assert objection.status_code in (200, 202)
    seen = await partner_view(demo, "ads-co")
    assert "ada@example.com" not in seen.text
