"""The card-data sentinel (DESIGN.md §9): card data is caught by content on every route."""

from __future__ import annotations

import sqlite3

import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.fields.card_sentinel import may_hold_card_data, may_hold_card_number
from support.demo import Demo, checkout_body

pytestmark = pytest.mark.anyio


def shop_dump(demo: Demo) -> str:
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


async def test_a_card_number_on_an_unplanned_route_is_refused_and_audited(demo: Demo) -> None:
    _, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    address = {"street": "1 Tea Lane", "city": "Leeds", "memo": "pay with 5555-5555-5555-4444 please"}
    response = await demo.client.post("/me/addresses", json=address, headers=auth)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "card_data_on_unprotected_route" and problem["field"] == "$.memo"
    assert "5555" not in response.text and "4444" not in response.text
    assert "Tea Lane" not in shop_dump(demo)
    await demo.app.runtime.audit.flush()
    [event] = await search(demo.app.runtime.database, kinds=["detection_finding.request_refused"])
    assert "POST /me/addresses" in str(event.document) and "4444" not in str(event.document)


async def test_a_card_code_key_or_a_form_body_on_an_unplanned_route_is_refused(demo: Demo) -> None:
    _, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    response = await demo.client.post("/me/addresses", json={"street": "x", "Card": {"CVC2": "737"}}, headers=auth)
    assert response.status_code == 422 and response.json()["field"] == "$.Card.CVC2"
    response = await demo.client.post("/me/addresses", data={"pan": "4111 1111 1111 1111"}, headers=auth)
    assert response.status_code == 422 and response.json()["code"] == "card_data_on_unprotected_route"


async def test_numbers_that_are_not_cards_pass(demo: Demo) -> None:
    _, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    # 16 digits failing the Luhn check, an order number, a phone number: no card.
    for memo in ("4242 4242 4242 4241", "ORD-2026-000000000001", "+44 20 7946 0018"):
        response = await demo.client.post("/me/addresses", json={"street": "1 Tea Lane", "memo": memo}, headers=auth)
        assert response.status_code == 201, (memo, response.text)


async def test_a_card_outside_the_planned_fields_of_checkout_is_refused(demo: Demo) -> None:
    _, token = await demo.register()
    body = checkout_body()
    body["payment"]["backup"] = {"pan": "4111-1111-1111-1111"}
    response = await demo.checkout(token, payment=body["payment"])
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "$.payment.backup.pan"
    assert "4111" not in shop_dump(demo)
    assert (await demo.checkout(token)).status_code == 201  # the planned card is encrypted, not refused


def test_prefilter() -> None:
    text = b'{"name": "Ada", "items": [{"sku": "TEA-001", "qty": 2}], "phone": "+44 20 7946 0018"}' * 20
    assert not may_hold_card_number(text) and not may_hold_card_data(text)
    assert may_hold_card_number(b'{"n": "4242 4242 4242 4242"}')
    assert may_hold_card_number(b'{"n": 4242424242424242}')
    assert may_hold_card_data(b'{"CVV": "1"}')


async def test_a_compressed_body_on_a_planned_route_is_checked_for_card_data(demo: Demo) -> None:
    """A planned route that reads bodies without parsing them (the login) checks a compressed one as any
    route does: the shop never receives a card number inside it."""
    import gzip

    body = gzip.compress(b'{"email": "ada@example.com", "password": "4111 1111 1111 1111"}')
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = await demo.client.post("/auth/login", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "card_data_on_unprotected_route" and "4111" not in response.text
