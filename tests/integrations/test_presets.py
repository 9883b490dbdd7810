"""The platform presets: each passes `policy check`, and filters the platform's real JSON shapes
as its recipients promise (a carrier sees the delivery address, never e-mail, IP or billing)."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest

from privacy_middleware.cli import main
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import load_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio

JWT_SECRET = "preset-test-secret-of-enough-length"
PLATFORMS = ["shopify", "woocommerce", "saleor"]


def preset(platform: str) -> Path:
    return Path(str(resources.files(f"privacy_middleware.integrations.{platform}").joinpath("preset.toml")))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_preset_passes_policy_check(platform: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(preset(platform))]) == 0
    assert "OK" in capsys.readouterr().out


def token(claims: dict[str, Any]) -> str:
    return jwt.encode({"iat": int(time.time()), "exp": int(time.time()) + 600, **claims}, JWT_SECRET, algorithm="HS256")


class Canned:
    """An inner app answering one JSON document, as the platform would."""

    def __init__(self, document: Any) -> None:
        self.body = orjson.dumps(document)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("http only")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"Content-Type", b"application/json; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


async def fetch(
    platform: str,
    tmp_path: Path,
    document: Any,
    method: str,
    path: str,
    claims: dict[str, Any],
    body: Any = None,
) -> Any:
    settings = Settings(
        policy_file=preset(platform),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": JWT_SECRET, "algorithms": ["HS256"]},
    )
    runtime = Runtime(settings, policy=load_policy(preset(platform)))
    app = PrivacyMiddleware(Canned(document), runtime=runtime)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            response = await client.request(
                method, path, json=body, headers={"authorization": f"Bearer {token(claims)}"}
            )
    finally:
        await runtime.stop()
    assert response.status_code == 200, response.text
    return response.json()


CARRIER = {"sub": "carrier-1", "recipient": "logistics", "purpose": "delivery"}

SHOPIFY_ADDRESS = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "name": "Ada Lovelace",
    "company": None,
    "address1": "1 Tea Lane",
    "address2": "",
    "city": "Leeds",
    "province": "England",
    "province_code": "ENG",
    "zip": "LS1 1AA",
    "country": "United Kingdom",
    "country_code": "GB",
    "phone": "+441134960000",
    "latitude": 53.8,
    "longitude": -1.55,
}
SHOPIFY_ORDER = {
    "id": 450789469,
    "name": "#1001",
    "email": "ada@example.com",
    "contact_email": "ada@example.com",
    "phone": None,
    "browser_ip": "203.0.113.9",
    "note": "ring twice",
    "total_price": "17.00",
    "currency": "GBP",
    "created_at": "2025-01-01T10:00:00-05:00",
    "financial_status": "paid",
    "customer": {
        "id": 207119551,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phone": "+441134960000",
        "note": None,
        "tags": "vip",
        "default_address": SHOPIFY_ADDRESS,
    },
    "shipping_address": SHOPIFY_ADDRESS,
    "billing_address": dict(SHOPIFY_ADDRESS, address1="2 Bill Road"),
    "client_details": {
        "browser_ip": "203.0.113.9",
        "user_agent": "Mozilla/5.0",
        "accept_language": "en-GB",
        "session_hash": "abc",
    },
    "line_items": [{"id": 1, "title": "Green tea", "quantity": 2, "price": "8.50"}],
}


async def test_shopify_preset_filters_admin_rest_orders_for_a_carrier(tmp_path: Path) -> None:
    seen = await fetch(
        "shopify", tmp_path, {"orders": [SHOPIFY_ORDER]}, "GET", "/admin/api/2025-10/orders.json", CARRIER
    )
    order = seen["orders"][0]
    assert order["shipping_address"]["address1"] == "1 Tea Lane"
    assert order["shipping_address"]["zip"] == "LS1 1AA"
    assert order["shipping_address"]["phone"] == "+441134960000"
    assert "email" not in order and "contact_email" not in order and "browser_ip" not in order
    assert "note" not in order
    assert "address1" not in order["billing_address"]
    assert order["client_details"] == {}  # unknown keys in a personal object are dropped
    assert "email" not in order["customer"] and "tags" not in order["customer"]
    assert "default_address" not in order["customer"]
    assert order["line_items"] == SHOPIFY_ORDER["line_items"] and order["total_price"] == "17.00"


async def test_shopify_preset_single_customer_for_support(tmp_path: Path) -> None:
    support = {"sub": "agent-7", "recipient": "support", "purpose": "order_fulfilment"}
    customer = dict(SHOPIFY_ORDER["customer"], addresses=[SHOPIFY_ADDRESS])
    seen = await fetch(
        "shopify",
        tmp_path,
        {"customer": customer},
        "GET",
        "/admin/api/2025-10/customers/207119551.json",
        support,
    )
    assert seen["customer"]["email"] == "ada@example.com"
    assert seen["customer"]["addresses"][0]["address1"] == "1 Tea Lane"
    assert seen["customer"]["default_address"]["zip"] == "LS1 1AA"


WOO_ADDRESS = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "",
    "address_1": "1 Tea Lane",
    "address_2": "",
    "city": "Leeds",
    "state": "",
    "postcode": "LS1 1AA",
    "country": "GB",
    "phone": "+44 113 496 0000",
}
WOO_ORDER = {
    "id": 727,
    "status": "processing",
    "currency": "GBP",
    "total": "17.00",
    "customer_id": 25,
    "customer_ip_address": "203.0.113.9",
    "customer_user_agent": "Mozilla/5.0",
    "customer_note": "ring twice",
    "date_created_gmt": "2025-01-01T10:00:00",
    "billing": dict(WOO_ADDRESS, address_1="2 Bill Road", email="ada@example.com"),
    "shipping": WOO_ADDRESS,
    "line_items": [{"id": 315, "name": "Green tea", "quantity": 2}],
}


async def test_woocommerce_preset_filters_rest_orders_for_a_carrier(tmp_path: Path) -> None:
    seen = await fetch("woocommerce", tmp_path, [WOO_ORDER], "GET", "/wp-json/wc/v3/orders", CARRIER)
    order = seen[0]
    assert order["shipping"] == WOO_ADDRESS
    assert order["billing"] == {"first_name": "Ada", "last_name": "Lovelace", "phone": "+44 113 496 0000"}
    for gone in ("customer_ip_address", "customer_user_agent", "customer_note", "customer_id"):
        assert gone not in order
    assert order["line_items"] == WOO_ORDER["line_items"]


async def test_saleor_preset_filters_graphql_data(tmp_path: Path) -> None:
    address = {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "streetAddress1": "1 Tea Lane",
        "city": "LEEDS",
        "postalCode": "LS1 1AA",
        "country": {"code": "GB", "country": "United Kingdom"},
        "phone": "+441134960000",
    }
    document = {
        "data": {
            "order": {
                "id": "T3JkZXI6MQ==",
                "number": "1",
                "userEmail": "ada@example.com",
                "customerNote": "ring twice",
                "user": {"id": "VXNlcjoyMg==", "email": "ada@example.com"},
                "shippingAddress": address,
                "billingAddress": address,
                "payments": [
                    {
                        "id": "UGF5bWVudDox",
                        "customerIpAddress": "203.0.113.9",
                        "creditCard": {"brand": "visa", "lastDigits": "4242", "firstDigits": "424242"},
                    }
                ],
            }
        },
        "extensions": {"cost": {"requestedQueryCost": 5}},
    }
    seen = await fetch(
        "saleor",
        tmp_path,
        document,
        "POST",
        "/graphql/",
        CARRIER,
        body={"query": 'query { order(id: "T3JkZXI6MQ==") { id } }'},
    )
    order = seen["data"]["order"]
    assert order["shippingAddress"]["streetAddress1"] == "1 Tea Lane"
    assert order["billingAddress"] == {"firstName": "Ada", "lastName": "Lovelace"}
    assert "userEmail" not in order and "customerNote" not in order
    assert order["user"] == {}
    assert order["payments"][0]["creditCard"] == {}
    assert "customerIpAddress" not in order["payments"][0]
    assert order["number"] == "1"


async def test_saleor_preset_shows_a_customer_their_own_profile(tmp_path: Path) -> None:
    me = {
        "data": {
            "me": {
                "id": "VXNlcjoyMg==",
                "email": "ada@example.com",
                "firstName": "Ada",
                "defaultShippingAddress": {"streetAddress1": "1 Tea Lane", "postalCode": "LS1 1AA"},
            },
            "orders": {"edges": [{"node": {"id": "T3JkZXI6OQ==", "userEmail": "bob@example.com"}}]},
        }
    }
    seen = await fetch(
        "saleor",
        tmp_path,
        me,
        "POST",
        "/graphql/",
        {"sub": "ada@example.com", "user_id": "VXNlcjoyMg=="},
        body={"query": "query { me { id email } orders(first: 1) { edges { node { id } } } }"},
    )
    assert seen["data"]["me"]["email"] == "ada@example.com"
    assert seen["data"]["me"]["defaultShippingAddress"]["streetAddress1"] == "1 Tea Lane"
    assert seen["data"]["orders"]["edges"][0]["node"] == {"id": "T3JkZXI6OQ=="}  # someone else's: filtered


async def test_woocommerce_preset_customer_for_support_and_carrier(tmp_path: Path) -> None:
    customer = {
        "id": 25,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "username": "ada",
        "role": "customer",
        "is_paying_customer": True,
        "billing": dict(WOO_ADDRESS, address_1="2 Bill Road", email="ada@example.com"),
        "shipping": WOO_ADDRESS,
    }
    support = {"sub": "agent-7", "recipient": "support", "purpose": "order_fulfilment"}
    seen = await fetch("woocommerce", tmp_path, customer, "GET", "/wp-json/wc/v3/customers/25", support)
    assert seen["email"] == "ada@example.com" and seen["shipping"] == WOO_ADDRESS
    assert seen["billing"]["address_1"] == "2 Bill Road"  # support sees user.contact, billing included
    assert seen["role"] == "customer"
    carrier_view = await fetch("woocommerce", tmp_path / "c", [customer], "GET", "/wp-json/wc/v3/customers", CARRIER)
    assert "email" not in carrier_view[0] and "username" not in carrier_view[0]
    assert carrier_view[0]["shipping"]["address_1"] == "1 Tea Lane"
