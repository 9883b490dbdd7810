"""An order list rewritten by the native pass answers exactly as the pure-Python path does (body,
headers, the data-access event), through the middleware with the demo policy; the demo shop's own
lists hold ciphertext to reveal, which the native pass leaves to the Python path."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.middleware import PrivacyMiddleware
from support.demo import Demo
from support.native import needs_native

pytestmark = [
    pytest.mark.anyio,
    needs_native,
]

ORDERS = orjson.dumps(
    {
        "orders": [
            {
                "id": f"ord_{i}",
                "customer_id": f"cus_{i % 2}",
                "total": 17.5,
                "customer": {"email": f"c{i}@example.com", "name": "Ada"},
                "shipping_address": {"name": "Ada", "street": "12 Marylebone Road", "phone": "+44 20 7946 0018"},
                "billing_address": {"name": "Ada", "city": "London"},
                "payment": {"card": {"number_last4": "4242", "exp_year": 2030}},
                "note": "Ring twice.",
            }
            for i in range(3)
        ]
    }
)


async def plain_shop(scope: Any, receive: Any, send: Any) -> None:
    """A shop that keeps its orders in clear (no envelopes to reveal)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ORDERS)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ORDERS})


def _spy(engine: Any) -> list[bool]:
    took: list[bool] = []
    original = engine.disclose_bytes

    async def spy(*args: Any, **kwargs: Any) -> Any:
        got = await original(*args, **kwargs)
        took.append(got is not None)
        return got

    engine.disclose_bytes = spy
    return took


async def test_the_native_pass_answers_as_the_python_path(demo: Demo) -> None:
    runtime = demo.app.runtime
    app = PrivacyMiddleware(plain_shop, runtime=runtime)
    took = _spy(runtime.fields)
    carrier = {"authorization": f"Bearer {await demo.partner('logistics-co')}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
        fast = await client.get("/orders", headers=carrier)
        runtime.fields.native = False
        slow = await client.get("/orders", headers=carrier)
    assert took == [True, False]
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    assert list(fast.headers.items()) == list(slow.headers.items())
    assert fast.json()["orders"][0] == {
        "id": "ord_0",
        "total": 17.5,
        "customer": {},
        "shipping_address": {"name": "Ada", "street": "12 Marylebone Road", "phone": "+44 20 7946 0018"},
        "billing_address": {},
        "payment": {"card": {}},
    }
    await runtime.audit.flush()
    fast_event, slow_event = await search(runtime.database, kinds=["api_activity.data_disclose"])
    for key in ("subjects", "categories", "record_count", "recipient"):
        assert fast_event.detail[key] == slow_event.detail[key], key
    assert fast_event.detail["subjects"] == ["cus_0", "cus_1"]


async def test_the_demo_shops_ciphertext_takes_the_python_path(demo: Demo) -> None:
    _, token = await demo.register("ada@example.com")
    assert (await demo.checkout(token)).status_code == 201
    took = _spy(demo.app.runtime.fields)
    carrier = {"authorization": f"Bearer {await demo.partner('logistics-co')}"}
    response = await demo.client.get("/orders", headers=carrier)
    assert response.status_code == 200 and took == [False]
    [order] = response.json()["orders"]
    assert order["shipping_address"]["street"] == "12 Marylebone Road"  # revealed from its envelope
