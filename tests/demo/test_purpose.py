"""Purpose-limited responses, outbound sharing and the minimisation guard through the demo shop."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from privacy_middleware.audit.query import search
from support.demo import Demo, checkout_body
from support.leaks import shows

pytestmark = pytest.mark.anyio

PERSONAL_OBJECTS = ("customer", "shipping_address", "billing_address")


async def orders_as(demo: Demo, client_id: str) -> list[dict[str, Any]]:
    token = await demo.partner(client_id)
    response = await demo.client.get("/orders", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private"
    return list(response.json()["orders"])


async def two_customers_ordered(demo: Demo) -> None:
    for email in ("ada@example.com", "grace@example.com"):
        _, token = await demo.register(email)
        assert (await demo.checkout(token)).status_code == 201


async def test_logistics_sees_only_name_phone_and_delivery_address(demo: Demo) -> None:
    await two_customers_ordered(demo)
    orders = await orders_as(demo, "logistics-co")
    assert len(orders) == 2
    for order in orders:
        assert set(order) == {
            "id",
            "status",
            "items",
            "total",
            "currency",
            "created_at",
            "customer",
            "shipping_address",
            "billing_address",
            "payment",
        }
        assert set(order["shipping_address"]) == {"name", "street", "city", "postal_code", "country", "phone"}
        assert order["shipping_address"]["street"] == "12 Marylebone Road"
        assert order["customer"] == {} and order["billing_address"] == {} and order["payment"] == {"card": {}}


async def test_analytics_gets_pseudonyms_and_no_contact_data(demo: Demo) -> None:
    await two_customers_ordered(demo)
    orders = await orders_as(demo, "stats-co")
    pseudonyms = {order["customer_id"] for order in orders}
    assert len(pseudonyms) == 2 and all(p.startswith("ps_") for p in pseudonyms)
    for order in orders:
        assert order["shipping_address"] == {"postal_code": "NW1", "country": "GB"}
        assert order["customer"] == {} and "note" not in order
    marketing = await orders_as(demo, "ads-co")
    # Two partners' pseudonyms for the same person cannot be joined.
    assert {o["customer_id"] for o in marketing}.isdisjoint(pseudonyms)


async def test_customer_sees_own_data_in_full_and_nobody_elses(demo: Demo) -> None:
    _, ada = await demo.register("ada@example.com")
    _, grace = await demo.register("grace@example.com")
    order_id = (await demo.checkout(ada)).json()["id"]
    own = (await demo.client.get("/orders", headers={"authorization": f"Bearer {ada}"})).json()["orders"]
    assert own[0]["customer"] == {"email": "ada@example.com", "name": "Ada Lovelace"}
    assert own[0]["note"] == "Please ring twice."
    # Even if the shop had a bug and returned Ada's order to Grace, Grace gets nothing personal.
    other = await demo.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {grace}"})
    assert other.status_code == 404


async def test_a_new_field_the_shop_adds_is_dropped_for_partners(demo: Demo) -> None:
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    document = orjson.loads(connection.execute("select document from orders where id = ?", (order_id,)).fetchone()[0])
    document["shipping_address"]["door_code"] = "4711#"
    connection.execute("update orders set document = ? where id = ?", (orjson.dumps(document).decode(), order_id))
    connection.commit()
    connection.close()
    [order] = await orders_as(demo, "logistics-co")
    assert "door_code" not in order["shipping_address"]
    own = (await demo.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {token}"})).json()
    assert own["shipping_address"]["door_code"] == "4711#"
    metrics = (await demo.client.get("/metrics")).text
    assert 'privacy_unknown_fields_total{action="drop",route="GET /orders"} 1.0' in metrics


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        ("4111 1111 1111 1111", "card_number"),
        ("11010519491231002X", "prc_resident_id"),
        ("DE89 3704 0044 0532 0130 00", "iban"),
        ("123-45-6789", "us_ssn"),
    ],
)
async def test_personal_data_pasted_into_an_order_note_is_refused(demo: Demo, secret: str, kind: str) -> None:
    note = f"for the courier: {secret} thanks"
    _, token = await demo.register()
    response = await demo.checkout(token, note=note)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "forbidden_data_detected" and problem["kinds"] == [kind]
    assert problem["field"] == "note"
    assert secret not in response.text and secret.replace(" ", "") not in response.text
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    assert connection.execute("select count(*) from orders").fetchone()[0] == 0
    connection.close()


async def test_an_order_number_in_a_note_is_not_mistaken_for_a_card(demo: Demo) -> None:
    _, token = await demo.register()
    response = await demo.checkout(token, note="re: order 4111 1111 1111 1112 and call +44 20 7946 0018")
    assert response.status_code == 201


async def test_under_age_registration_is_refused_and_audited_without_the_birth_date(demo: Demo) -> None:
    response = await demo.client.post(
        "/auth/register",
        json={"email": "kid@example.com", "password": "correct horse battery", "birth_date": "2015-06-01"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "below_minimum_age"
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    assert connection.execute("select count(*) from customers").fetchone()[0] == 0
    connection.close()
    await demo.app.runtime.audit.flush()
    [finding] = await search(demo.app.runtime.database, kinds=["detection_finding.underage_registration"])
    assert not shows("2015", str(finding.document)) and "kid@example.com" not in str(finding.document)
    missing = await demo.client.post("/auth/register", json={"email": "x@example.com", "password": "p" * 10})
    assert missing.status_code == 422 and missing.json()["code"] == "birth_date_required"


async def test_unknown_recipient_or_purpose_in_a_token_is_403(demo: Demo) -> None:
    stranger = demo.shop.token({"sub": "x", "recipient": "data-broker"})
    wrong_purpose = demo.shop.token({"sub": "x", "recipient": "logistics", "purpose": "marketing"})
    for token in (stranger, wrong_purpose):
        response = await demo.client.get("/orders", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 403


async def test_outbound_call_to_logistics_carries_only_the_allowed_fields(demo: Demo, httpx_mock: HTTPXMock) -> None:
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    stored = orjson.loads(connection.execute("select document from orders where id = ?", (order_id,)).fetchone()[0])
    connection.close()
    httpx_mock.add_response(url="https://api.logistics.example/v1/shipments", json={"tracking": "TRK1"})
    async with httpx.AsyncClient(transport=demo.app.transport(httpx.AsyncHTTPTransport())) as partner:
        await partner.post("https://api.logistics.example/v1/shipments", json=stored)
    sent = orjson.loads(httpx_mock.get_requests()[0].content)
    assert sent["shipping_address"] == {
        "name": "Ada Lovelace",
        "street": "12 Marylebone Road",
        "city": "London",
        "postal_code": "NW1 5LR",
        "country": "GB",
        "phone": "+44 20 7946 0018",
    }
    assert sent["payment"] == {"card": {}} and sent["billing_address"] == {} and sent["customer"] == {}
    assert "note" not in sent and "customer_id" not in sent
    # An endpoint the policy does not declare for this recipient is refused, nothing sent.
    from privacy_middleware.errors import PrivacyError

    async with httpx.AsyncClient(transport=demo.app.transport(httpx.AsyncHTTPTransport())) as partner:
        with pytest.raises(PrivacyError) as info:
            await partner.post("https://api.logistics.example/v1/anything", json=checkout_body())
    assert info.value.code == "outbound_not_allowed"
    assert len(httpx_mock.get_requests()) == 1
