"""Shapes fail closed (DESIGN.md §9): bodies the policy cannot read exactly never reach the shop.

One regression test per class the attack report listed: key spellings, duplicate keys, wrong
containers, deep nesting, card security codes, and no plain-text 500.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import pytest

from privacy_middleware.audit.query import search
from support.demo import Demo, checkout_body

pytestmark = pytest.mark.anyio


def shop_dump(demo: Demo) -> str:
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


async def post_raw(demo: Demo, token: str, path: str, raw: bytes) -> Any:
    return await demo.client.post(
        path, content=raw, headers={"authorization": f"Bearer {token}", "content-type": "application/json"}
    )


def assert_refused(response: Any, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code
    if field is not None:
        assert problem["field"] == field
    return problem


async def refusals(demo: Demo) -> list[dict[str, Any]]:
    await demo.app.runtime.audit.flush()
    found = await search(demo.app.runtime.database, kinds=["detection_finding.request_refused"])
    return [record.document for record in found if record.document is not None]


async def test_key_differing_only_in_case_is_refused_and_not_stored(demo: Demo) -> None:
    _, token = await demo.register()
    body = checkout_body()
    body["payment"]["card"]["Number"] = "5555 5555 5555 4444"
    response = await demo.checkout(token, payment=body["payment"])
    problem = assert_refused(response, "ambiguous_key", "$.payment.card.Number")
    assert "5555" not in response.text and "5555" not in problem["detail"]
    assert "5555555555554444" not in shop_dump(demo)
    [event] = await refusals(demo)
    assert "ambiguous_key" in str(event) and "$.payment.card.Number" in str(event) and "5555" not in str(event)


async def test_full_width_and_unicode_key_spellings_are_refused(demo: Demo) -> None:
    _, token = await demo.register()
    for spelled in ("\uff4e\uff55\uff4d\uff42\uff45\uff52", "NUMBER", "nUmBeR"):  # full-width, upper, mixed
        body = checkout_body()
        body["payment"]["card"][spelled] = "5555 5555 5555 4444"
        assert_refused(await demo.checkout(token, payment=body["payment"]), "ambiguous_key")
    body = checkout_body()
    body["SHIPPING_ADDRESS"] = body.pop("shipping_address")
    assert_refused(await demo.checkout(token, **body), "ambiguous_key", "$.SHIPPING_ADDRESS")


async def test_duplicate_keys_are_refused_with_their_path(demo: Demo) -> None:
    _, token = await demo.register()
    raw = orjson.dumps(checkout_body()).replace(b'"street":"12 Marylebone Road"', b'"street":"x","street":"y"', 1)
    assert_refused(await post_raw(demo, token, "/checkout", raw), "duplicate_key", "$.shipping_address.street")
    escaped = orjson.dumps(checkout_body()).replace(b'"note":', b'"note":"a","\\u006eote":', 1)
    assert_refused(await post_raw(demo, token, "/checkout", escaped), "duplicate_key", "$.note")


async def test_duplicate_birth_date_on_registration_is_refused(demo: Demo) -> None:
    raw = (
        b'{"email":"kid@example.com","password":"correct horse battery","name":"K",'
        b'"birth_date":"2019-01-01","birth_date":"1990-01-01"}'
    )
    response = await demo.client.post("/auth/register", content=raw, headers={"content-type": "application/json"})
    assert_refused(response, "duplicate_key", "$.birth_date")
    assert "kid@example.com" not in shop_dump(demo)


async def test_array_where_an_object_is_declared_is_refused(demo: Demo) -> None:
    _, token = await demo.register()
    body = checkout_body()
    response = await demo.checkout(token, shipping_address=[body["shipping_address"]])
    assert_refused(response, "wrong_container_type", "$.shipping_address")
    response = await demo.checkout(token, shipping_address="12 Marylebone Road, London")
    assert_refused(response, "wrong_container_type", "$.shipping_address")
    card = body["payment"]["card"]
    response = await demo.checkout(token, payment={"card": {**card, "holder": {"first": "Ada"}}})
    assert_refused(response, "wrong_container_type", "$.payment.card.holder")
    assert "Marylebone" not in shop_dump(demo)


async def test_nesting_past_the_limit_is_refused_as_problem_json(demo: Demo) -> None:
    _, token = await demo.register()
    for depth in (33, 1000, 5000):
        deep = b'{"note":"x","items":[],"deep":' + b"[" * depth + b"]" * depth + b"}"
        response = await post_raw(demo, token, "/checkout", deep)
        problem = assert_refused(response, "json_too_deep")
        assert problem["max_depth"] == 32


async def test_card_codes_are_removed_from_any_object_holding_a_card(demo: Demo) -> None:
    _, token = await demo.register()
    body = checkout_body()
    body["payment"]["card"].pop("cvv")
    body["payment"]["card"]["CVC2"] = "737"
    body["payment"]["card"]["security_code"] = "737"
    body["payment"]["backup_card"] = {"pan": "4111-1111-1111-1111", "Cvv": "123", "csc": "123"}
    response = await demo.checkout(token, payment=body["payment"])
    assert response.status_code in (201, 422), response.text
    dump = shop_dump(demo)
    for key in ("CVC2", "security_code", "Cvv", '"csc"', '"cvv"'):
        assert key not in dump


async def test_a_failure_inside_the_middleware_is_problem_json_and_forwards_nothing(demo: Demo) -> None:
    _, token = await demo.register()

    class Broken(RuntimeError):
        pass

    engine = demo.app.runtime.fields

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise Broken("a value 4242424242424242 that must not be logged")

    engine.protect_request = broken  # type: ignore[method-assign]
    engine._seal = broken  # type: ignore[method-assign]
    engine.seal_texts = broken  # type: ignore[method-assign]  # the native request pass seals through it
    response = await demo.checkout(token)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "internal_error"
    assert "4242" not in response.text
    assert "Marylebone" not in shop_dump(demo)
