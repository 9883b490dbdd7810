"""The card-data sentinel (DESIGN.md §9): card data is caught by content on every route."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.demo.run import build_demo, demo_policy_path
from privacy_middleware.fields.card_sentinel import may_hold_card_data, may_hold_card_number
from support.demo import Demo, checkout_body
from support.leaks import card_shows

MEMO_CARD = "5555555555554444"

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
    assert "POST /me/addresses" in str(event.document) and not card_shows(MEMO_CARD, str(event.document))


async def test_a_card_code_key_or_a_form_body_on_an_unplanned_route_is_refused(demo: Demo) -> None:
    _, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    response = await demo.client.post("/me/addresses", json={"street": "x", "Card": {"CVC2": "737"}}, headers=auth)
    assert response.status_code == 422 and response.json()["field"] == "$.Card.CVC2"
    response = await demo.client.post("/me/addresses", data={"pan": "4111 1111 1111 1111"}, headers=auth)
    assert response.status_code == 422 and response.json()["code"] == "card_data_on_unprotected_route"
    # Spellings the byte-level prefilter once let through: a key with separators, digits as escapes.
    response = await demo.client.post("/me/addresses", json={"street": "x", "c_v_v": "737"}, headers=auth)
    assert response.status_code == 422 and response.json()["field"] == "$.c_v_v"
    escaped = b'{"street": "x", "memo": "\\u0034\\u0031\\u00311 1111 1111 1111"}'
    headers = {**auth, "content-type": "application/json"}
    response = await demo.client.post("/me/addresses", content=escaped, headers=headers)
    assert response.status_code == 422 and response.json()["field"] == "$.memo"


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
    assert not card_shows("4111111111111111", shop_dump(demo))
    assert (await demo.checkout(token)).status_code == 201  # the planned card is encrypted, not refused


def test_prefilter() -> None:
    text = b'{"name": "Ada", "items": [{"sku": "TEA-001", "qty": 2}], "phone": "+44 20 7946 0018"}' * 20
    assert not may_hold_card_number(text) and not may_hold_card_data(text)
    assert may_hold_card_number(b'{"n": "4242 4242 4242 4242"}')
    assert may_hold_card_number(b'{"n": 4242424242424242}')
    assert may_hold_card_data(b'{"CVV": "1"}')
    # Key spellings the card-code check reads as a card code (separators dropped) pass the prefilter too.
    for key in (b"c_v_v", b"Security.Code", b"card-verification-value", b"CID"):
        assert may_hold_card_data(b'{"' + key + b'": "1"}'), key
    escaped = b"".join(b"\\u003" + bytes([digit]) for digit in b"4111111111111111")
    assert may_hold_card_number(b'{"n": "' + escaped + b'"}')  # every digit a \u escape


async def test_a_compressed_body_on_a_planned_route_is_checked_for_card_data(demo: Demo) -> None:
    """A planned route that reads bodies without parsing them (the login) checks a compressed one as any
    route does: the shop never receives a card number inside it."""
    import gzip

    body = gzip.compress(b'{"email": "ada@example.com", "password": "4111 1111 1111 1111"}')
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = await demo.client.post("/auth/login", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "card_data_on_unprotected_route" and "4111" not in response.text


@pytest.fixture
async def tokenising(tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[Demo]:
    """The demo with `[cards] unplanned = "tokenise"` added to its policy."""
    policy = tmp_path / "policy.toml"
    policy.write_text(demo_policy_path().read_text() + '\n[cards]\nunplanned = "tokenise"\n')
    app, shop = build_demo(tmp_path, policy_file=policy, audit={"retention_interval_seconds": 0})
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        yield Demo(app, shop, client, tmp_path)


async def test_tokenise_mode_stores_a_token_instead_of_refusing(tokenising: Demo) -> None:
    demo = tokenising
    _, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    address = {"street": "1 Tea Lane", "memo": "pay with 5555-5555-5555-4444 please", "backup": 4111111111111111}
    response = await demo.client.post("/me/addresses", json=address, headers=auth)
    assert response.status_code == 201, response.text
    stored = shop_dump(demo)
    assert "Tea Lane" in stored and "pay with tok_" in stored
    assert not card_shows(MEMO_CARD, stored) and not card_shows("4111111111111111", stored)
    await demo.app.runtime.audit.flush()
    [event] = await search(demo.app.runtime.database, kinds=["detection_finding.card_data_tokenised"])
    assert "POST /me/addresses" in str(event.document) and "$.memo" in str(event.document)
    assert not card_shows(MEMO_CARD, str(event.document))
    # The token is the vault's: the field engine reveals it for that subject.
    memo = orjson.loads((await demo.client.get("/me/addresses", headers=auth)).content)["addresses"][0]["memo"]
    found = re.search(r"tok_[A-Za-z0-9_-]+", memo)
    assert found is not None
    subject = await demo.app.runtime.identity.authenticate(
        {"type": "http", "headers": [(b"authorization", auth["authorization"].encode())]}
    )
    assert subject is not None
    clear = await demo.app.runtime.keys.detokenise(
        found.group(), category="user.financial.card.number", subject=subject.subject
    )
    assert clear == "5555555555554444"


async def test_tokenise_mode_tokenises_a_card_outside_the_planned_fields_of_checkout(tokenising: Demo) -> None:
    """The checkout's body is read lazily (untouched parts stay raw bytes): the tokenised body is
    written back with them, never refused for them."""
    demo = tokenising
    _, token = await demo.register()
    body = checkout_body()
    body["payment"]["backup"] = {"pan": "4111-1111-1111-1111"}
    response = await demo.checkout(token, payment=body["payment"])
    assert response.status_code == 201, response.text
    stored = shop_dump(demo)
    assert not card_shows("4111111111111111", stored) and "TEA-001" in stored


async def test_tokenise_mode_still_refuses_card_codes_and_anonymous_callers(tokenising: Demo) -> None:
    demo = tokenising
    _, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    response = await demo.client.post("/me/addresses", json={"street": "x", "card": {"cvv": "737"}}, headers=auth)
    assert response.status_code == 422 and response.json()["field"] == "$.card.cvv"
    response = await demo.client.post("/notes", json={"memo": "4111 1111 1111 1111"})
    assert response.status_code == 422 and response.json()["code"] == "card_data_on_unprotected_route"


async def test_the_owner_sees_brand_and_last_four_of_their_card(demo: Demo) -> None:
    _, token = await demo.register()
    created = await demo.checkout(token)
    assert created.status_code == 201, created.text
    order = (
        await demo.client.get(f"/orders/{created.json()['id']}", headers={"authorization": f"Bearer {token}"})
    ).json()
    card = order["payment"]["card"]
    assert card["number"] == "\u2022" * 12 + "4242"
    assert card["number_last4"] == "4242" and card["number_brand"] == "visa"
    assert "4242 4242" not in str(order) and "4242424242424242" not in str(order)


@pytest.mark.parametrize(
    "raw",
    [
        '{"street": "x", "card": {"\\uff43\\uff56\\uff56": "737"}}',  # full-width, escaped
        '{"street": "x", "card": {"\uff43\uff56\uff56": "737"}}',  # full-width, as UTF-8
        '{"street": "x", "card": {"\\u0063vv": "737"}}',  # an escaped ASCII letter
        '{"street": "x", "card": {"\uff33\uff45\uff43\uff55\uff52\uff49\uff54\uff59_Code": "737"}}',
    ],
)
async def test_card_code_keys_in_any_unicode_spelling_are_refused_on_an_unplanned_route(demo: Demo, raw: str) -> None:
    _, token = await demo.register()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    response = await demo.client.post("/me/addresses", content=raw.encode(), headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "card_data_on_unprotected_route" and "737" not in response.text


@pytest.mark.parametrize(
    "memo",
    [
        "pay with \uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11",
        "\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661",
    ],
    ids=["full-width", "arabic-indic"],
)
async def test_card_numbers_in_other_decimal_digits_are_refused_on_an_unplanned_route(demo: Demo, memo: str) -> None:
    """A shop's parser may read them as digits (Python's int() does): a card number all the same."""
    _, token = await demo.register()
    address = {"street": "1 Tea Lane", "city": "Leeds", "memo": memo}
    response = await demo.client.post("/me/addresses", json=address, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "card_data_on_unprotected_route" and response.json()["field"] == "$.memo"
    assert "Tea Lane" not in shop_dump(demo)


async def test_accented_text_without_card_data_passes(demo: Demo) -> None:
    _, token = await demo.register()
    address = {"street": "12 rue de la Paix", "city": "Besançon", "memo": "sonnez deux fois, s'il vous plaît"}
    response = await demo.client.post("/me/addresses", json=address, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
