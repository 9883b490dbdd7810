"""Seed 003_f688c41ce3130c59.txt through real HTTP: each test is one promise of that notice."""

from __future__ import annotations

import pytest

from support.conformance import (
    assert_address_book_encrypted,
    assert_erased,
    assert_rectified,
    bearer,
    consent,
    exported,
    ordering_customer,
    partner_order,
    partner_view,
    set_cookie_names,
    shop_dump,
    tracked_events,
)
from support.demo import CARD, Demo

pytestmark = pytest.mark.anyio
SEED = "003_f688c41ce3130c59"


async def test_the_four_cookie_classes_are_declared_and_shown(demo: Demo) -> None:
    """§6.1 "Essential Cookies ... Performance Cookies ... Functional Cookies ... Marketing Cookies"."""
    state = (await demo.client.get("/privacy/consent")).json()
    classes = {name: p["cookie_class"] for name, p in state["purposes"].items() if p["cookie_class"]}
    assert classes == {
        "essential": "essential",
        "analytics": "analytics",
        "preferences": "functional",
        "marketing": "advertising",
    }
    assert state["purposes"]["essential"]["allowed"] is True
    for optional in ("analytics", "preferences", "marketing"):
        assert state["purposes"][optional]["allowed"] is False


async def test_essential_cookies_are_set_and_performance_and_marketing_cookies_wait(demo: Demo) -> None:
    """§6.2 "disabling essential cookies may affect certain website functionalities": they are always set;
    performance and marketing cookies only after the matching choice."""
    assert set_cookie_names(await demo.client.get("/products")) == {"session"}
    await consent(demo, analytics=True)
    assert set_cookie_names(await demo.client.get("/products")) >= {"_ga"}
    assert "_fbp" not in set_cookie_names(await demo.client.get("/products"))
    await consent(demo, analytics=True, marketing=True)
    assert {"_ga", "_fbp"} <= set_cookie_names(await demo.client.get("/products"))


async def test_functional_preference_cookies_are_expired_without_consent(demo: Demo) -> None:
    """§6.1 "Functional Cookies: Used to remember your preferences and settings", only when chosen."""
    response = await demo.client.get("/products", headers={"cookie": "pref_lang=fr"})
    expired = [v for v in response.headers.get_list("set-cookie") if v.startswith("pref_lang=")]
    assert expired and all("Max-Age=0" in v for v in expired)
    await consent(demo, preferences=True)
    kept = await demo.client.get("/products", headers={"cookie": f"pref_lang=fr; {cookie_header(demo)}"})
    assert not [v for v in kept.headers.get_list("set-cookie") if v.startswith("pref_lang=")]


def cookie_header(demo: Demo) -> str:
    return "; ".join(f"{name}={value}" for name, value in demo.client.cookies.items())


async def test_policy_version_and_effective_date_are_served(demo: Demo) -> None:
    """§8.1 "Last Updated: January 9, 2024 - Effective Date: January 9, 2024"."""
    served = await demo.client.get("/privacy/policy")
    assert served.status_code == 200
    body = served.json()
    assert (body["version"], body["effective_date"]) == ("2024-01-09", "2024-01-09")
    assert body["history"][-1]["version"] == "2024-01-09"
    assert (await demo.client.get("/privacy/consent")).json()["policy_version"] == "2024-01-09"


async def test_each_purpose_rests_on_one_of_the_four_stated_legal_grounds(demo: Demo) -> None:
    """§2.2 consent, performance of a contract, legal obligations, legitimate interests."""
    state = (await demo.client.get("/privacy/consent")).json()
    bases = {name: p["legal_basis"] for name, p in state["purposes"].items()}
    assert set(bases.values()) == {"consent", "contract", "legal_obligation", "legitimate_interest"}
    assert bases["marketing"] == bases["analytics"] == "consent"
    assert bases["order_fulfilment"] == "contract"


async def test_payment_processor_receives_the_card_and_nothing_else(demo: Demo) -> None:
    """§4.2 "Payment Processor | Process transactions and payments | Complies with PCI DSS"."""
    await ordering_customer(demo)
    payer = await partner_order(demo, "pay-co")
    assert payer["payment"]["card"]["number"] == "4242424242424242"
    assert "cvv" not in payer["payment"]["card"]
    assert payer["shipping_address"] == {} and payer["customer"] == {}


async def test_analytics_service_receives_anonymised_data_only(demo: Demo) -> None:
    """§4.2 "Analytics Service | Analyze user behavior | Data anonymization"."""
    customer, token = await demo.register()
    await demo.checkout(token)
    seen = await partner_order(demo, "stats-co")
    assert customer not in str(seen)
    for value in ("ada@example.com", "Ada Lovelace", "Marylebone", "4242424242424242", "+44 20"):
        assert value not in str(seen)
    assert seen["payment"]["card"] == {}
    assert seen["shipping_address"] == {"country": "GB"}


async def test_cloud_storage_provider_holds_only_encrypted_copies(demo: Demo) -> None:
    """§4.2 "Cloud Storage Provider | Store and backup user data | Encrypted storage and transmission"."""
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    storage = demo.shop.token(
        {"sub": "backup", "recipient": "cloud_storage", "purpose": "order_fulfilment", "scope": "orders:read"}
    )
    seen = (await demo.client.get(f"/orders/{order_id}", headers=bearer(storage))).json()
    assert seen["payment"]["card"]["number"].startswith("pe1.")
    assert seen["shipping_address"]["street"].startswith("pe1.")
    for value in ("4242424242424242", "Marylebone", "ada@example.com"):
        assert value not in str(seen)


async def test_support_tools_see_masked_contact_and_payment_data(demo: Demo) -> None:
    """§4.2 "Customer Support Tools | Provide customer service | Access control and encryption"."""
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    staff = await demo.partner("staff")
    seen = (await demo.client.get(f"/orders/{order_id}", headers=bearer(staff))).json()
    assert seen["payment"]["card"]["number"] == "****4242"
    assert seen["customer"]["email"] == "ada@example.com"
    assert "7946 0018" not in str(seen)


async def test_no_sharing_with_a_third_party_the_policy_does_not_list(demo: Demo) -> None:
    """§4 "We do not share your personal information with third parties without your consent"."""
    await ordering_customer(demo)
    carrier = await partner_view(demo, "logistics-co")
    assert carrier.status_code == 403
    assert carrier.json()["code"] == "unknown_recipient"


async def test_data_is_stored_encrypted(demo: Demo) -> None:
    """§4.2 "Encrypted storage" and §3 protection from unauthorised access."""
    _, token = await demo.register()
    assert (await demo.checkout(token)).status_code == 201
    dump = shop_dump(demo)
    for secret in ("4242424242424242", CARD, "12 Marylebone Road"):
        assert secret not in dump
    await assert_address_book_encrypted(demo, token)


async def test_access_control_and_authentication_protect_accounts(demo: Demo) -> None:
    """§3.1 "Implement access controls and authentication mechanisms"."""
    await demo.register()
    for _ in range(10):
        await demo.client.post("/auth/login", json={"email": "ada@example.com", "password": "not it"})
    locked = await demo.client.post(
        "/auth/login", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert locked.status_code == 429
    assert (await demo.client.get("/orders")).status_code == 401


async def test_usage_statistics_are_anonymised_and_need_consent(demo: Demo) -> None:
    """§1.2 clickstream, search queries, location inferred from IP; §4.2 analytics "Data anonymization"."""
    event = {
        "event": "search",
        "query": "green tea",
        "visitor_id": "visitor-wren",
        "ip": "203.0.113.99",
        "geo": {"lat": 51.52, "lon": -0.15, "country": "GB"},
    }
    assert (await demo.client.post("/track", json=event)).status_code == 204
    await consent(demo, analytics=True)
    assert (await demo.client.post("/track", json=event)).status_code == 202
    [stored] = tracked_events(demo)
    for identity in ("visitor-wren", "203.0.113.99", "51.52", "-0.15"):
        assert identity not in stored
    assert "green tea" in stored and "GB" in stored


async def test_marketing_can_be_opted_out_at_any_time(demo: Demo) -> None:
    """§2.1 "Send you marketing communications ... (you can opt out at any time)"."""
    await consent(demo, marketing=True)
    assert "_fbp" in set_cookie_names(await demo.client.get("/products"))
    with_gpc = (await demo.client.get("/privacy/consent", headers={"sec-gpc": "1"})).json()
    assert with_gpc["purposes"]["marketing"]["allowed"] is False
    await consent(demo, marketing=False)
    assert (await demo.client.get("/privacy/consent")).json()["purposes"]["marketing"]["allowed"] is False


async def test_right_to_access_gives_a_copy(demo: Demo) -> None:
    """§5.1 "access personal information we hold about you and obtain a copy of it"."""
    await exported(demo, await ordering_customer(demo))


async def test_right_to_correction(demo: Demo) -> None:
    """§5.2 "request that we correct or supplement it"."""
    _, token = await demo.register()
    await assert_rectified(demo, token, "name", "Ada King")


async def test_right_to_deletion(demo: Demo) -> None:
    """§5.3 "request that we delete your personal information"."""
    await assert_erased(demo, await ordering_customer(demo), "ada@example.com")


async def test_right_to_restrict_processing(demo: Demo) -> None:
    """§5.4 "request that we restrict the processing": restricted data stops reaching analytics."""
    token = await ordering_customer(demo)
    assert (await demo.client.post("/privacy/me/restriction", headers=bearer(token))).status_code in (
        200,
        202,
    )
    seen = (await partner_view(demo, "stats-co")).json()["orders"]
    assert all(order["shipping_address"] == {} for order in seen)


async def test_right_to_data_portability(demo: Demo) -> None:
    """§5.5 "structured, commonly used, and machine-readable format"."""
    _, token = await demo.register()
    export = await demo.client.get("/privacy/me/export", headers=bearer(token))
    assert export.headers["content-type"].startswith("application/json")
    assert export.json()["subject"]


async def test_right_to_object(demo: Demo) -> None:
    """§5.6 "object to certain processing": an objection to analytics stops the tracking at once."""
    _, token = await demo.register()
    await consent(demo, analytics=True)
    objection = await demo.client.post("/privacy/me/objection", json={"purposes": ["analytics"]}, headers=bearer(token))
    assert objection.status_code in (200, 202)
    response = await demo.client.post("/track", json={"event": "page_view"}, headers=bearer(token))
    assert response.status_code == 204
