"""Recipients the policy grants read a guest's order exactly as a customer's: the order's number is
bound to the subject it was sealed for when the shop created it. The capability also binds when the
shop answers the checkout with a redirect to the order's status page (its `Location`)."""

from __future__ import annotations

import secrets
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio
SECRET = "s" * 40
STREET = "7 Harbour Road"

POLICY_TOML = """
[policy]
name = "t"
version = "1"
effective_date = "2026-01-01"

[categories."user.contact.email"]
[categories."user.contact.address.delivery"]

[purposes.order_fulfilment]
legal_basis = "contract"
[purposes.delivery]
legal_basis = "contract"

[recipients.staff]
purposes = ["order_fulfilment"]
sees = { "user.contact" = "keep" }
[recipients.logistics]
purposes = ["delivery"]
sees = { "user.contact.address.delivery" = "keep" }

[shapes.order]
record_key = "number"
personal_objects = ["shipping"]
fields = [
  { select = "email", category = "user.contact.email", token_format = "email" },
  { select = "shipping.street", category = "user.contact.address.delivery" },
]

[[routes]]
method = "POST"
path = "/checkout"
purpose = "order_fulfilment"
response = { shape = "order" }
[routes.request]
fields = [
  { select = "email", category = "user.contact.email", transform = "tokenise", token_format = "email", \
    validate_as = "email", deterministic = true },
  { select = "shipping.street", category = "user.contact.address.delivery", transform = "encrypt" },
]

[[routes]]
method = "GET"
path = "/orders/{number}"
response = { shape = "order" }

[[routes]]
method = "GET"
path = "/status/{record}/{capability}"
response = { shape = "order" }

[guests]
order_routes = [{ path = "/status/{record}/{capability}" }]
[[guests.checkouts]]
path = "/checkout"
email = "email"
capability_location = "/status/{record}/{capability}"
"""


class RedirectingShop:
    """A shop that answers a guest's checkout with a redirect to the order's status page (as Oscar does)."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}

    async def checkout(self, request: Request) -> Response:
        number = str(1000 + len(self.orders))
        self.orders[number] = {**(await request.json()), "number": number}
        self.keys[number] = secrets.token_urlsafe(12)
        if request.query_params.get("json"):
            return JSONResponse(self.orders[number])
        return RedirectResponse(f"/status/{number}/{self.keys[number]}", status_code=303)

    async def status(self, request: Request) -> Response:
        number = request.path_params["record"]
        if self.keys.get(number) != request.path_params["capability"]:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(self.orders[number])

    async def order(self, request: Request) -> Response:  # the staff API: the shop trusts its own staff
        return JSONResponse(self.orders[request.path_params["number"]])

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/checkout", self.checkout, methods=["POST"]),
                Route("/status/{record}/{capability}", self.status),
                Route("/orders/{number}", self.order),
            ]
        )


def bearer(**claims: Any) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 300, **claims}, SECRET, algorithm="HS256")
    return {"authorization": f"Bearer {token}"}


def staff() -> dict[str, str]:
    """Minted when used: a token minted at collection time expires before a whole-suite run reaches it."""
    return bearer(sub="sam", recipient="staff")


def carrier() -> dict[str, str]:
    return bearer(sub="carrier-1", recipient="logistics")


@pytest.fixture
async def shop(tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[tuple[httpx.AsyncClient, RedirectingShop]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": SECRET, "algorithms": ["HS256"]},
        audit={"retention_interval_seconds": 0},
    )
    shop = RedirectingShop()
    app = PrivacyMiddleware(shop.app(), runtime=Runtime(settings, policy=validate_policy(tomllib.loads(POLICY_TOML))))
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        yield client, shop


GUEST_ORDER = {"email": "grace@example.com", "shipping": {"street": STREET}}


async def test_the_redirect_to_the_status_page_binds_the_guests_capability(shop: Any) -> None:
    client, state = shop
    placed = await client.post("/checkout", json=GUEST_ORDER)
    assert placed.status_code == 303
    status_page = placed.headers["location"]
    assert STREET not in str(state.orders) and "grace@" not in str(state.orders)  # sealed before the shop
    mine = await client.get(status_page)
    assert mine.json()["shipping"]["street"] == STREET and mine.json()["email"] == "grace@example.com"
    other = await client.get(status_page.rsplit("/", 1)[0] + "/forged")
    assert STREET not in other.text


@pytest.mark.parametrize("answer", ["redirect", "json"])
async def test_staff_and_partners_read_a_guests_order_as_the_policy_grants(shop: Any, answer: str) -> None:
    client, state = shop
    placed = await client.post("/checkout" + ("?json=1" if answer == "json" else ""), json=GUEST_ORDER)
    assert placed.status_code in (200, 303)
    number = next(iter(state.orders))
    seen = (await client.get(f"/orders/{number}", headers=staff())).json()
    assert seen["shipping"]["street"] == STREET and seen["email"] == "grace@example.com", seen
    delivery = (await client.get(f"/orders/{number}", headers=carrier())).json()
    assert delivery["shipping"]["street"] == STREET and "email" not in delivery, delivery
    anonymous = (await client.get(f"/orders/{number}")).json()
    assert "street" not in anonymous["shipping"] and "email" not in anonymous, anonymous


async def test_a_record_keeps_its_first_owner(shop: Any) -> None:
    """A later write answering with the same order number does not move the order to another subject."""
    client, state = shop
    await client.post("/checkout?json=1", json=GUEST_ORDER)
    number = next(iter(state.orders))
    state.orders.clear()  # the shop hands out the same number again (a bug, or a malicious replay)
    await client.post("/checkout?json=1", json={"email": "mallory@example.com", "shipping": {"street": "1 Other St"}})
    state.orders[number] = state.orders.pop(number)
    seen = (await client.get(f"/orders/{number}", headers=staff())).json()
    assert seen["shipping"]["street"] == {"error": "unreadable", "code": "decryption_failed"}, seen
