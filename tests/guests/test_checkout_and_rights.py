"""Guests keep their protection: guest checkout encrypted under a subject derived from the e-mail,
the shop's order link makes the guest the owner of that order, and rights by e-mail code (a real
SMTP server on loopback receives the code)."""

from __future__ import annotations

import email
import re
import secrets
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from support.servers import free_port

pytestmark = pytest.mark.anyio

POLICY_TOML = """
[policy]
name = "t"
version = "1"
effective_date = "2026-01-01"
controller = "Tea Shop"

[categories."user.contact.email"]
[categories."user.contact.address.delivery"]
[categories."user.id"]

[purposes.order_fulfilment]
legal_basis = "contract"

[shapes.order]
subject = "customer_id"
personal_objects = ["$", "shipping"]
fields = [
  { select = "customer_id", category = "user.id" },
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

[guests]
checkouts = [{ path = "/checkout", email = "email", capability = "order_token" }]
order_routes = [{ path = "/orders/{number}" }]
capability_param = "token"
"""
ORDER = {"email": "Grace@Example.com", "shipping": {"street": "7 Harbour Road"}, "total": 12}


class GuestShop:
    """Guest checkout with an order link (`/orders/<n>?token=...`), as Oscar and others do it."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}

    async def checkout(self, request: Request) -> Response:
        body = await request.json()
        number = str(len(self.orders) + 1)
        self.orders[number] = {
            **body,
            "number": number,
            "customer_id": None,
            "order_token": secrets.token_urlsafe(16),
        }
        return JSONResponse(self.orders[number], status_code=201)

    async def order(self, request: Request) -> Response:
        found = self.orders.get(request.path_params["number"])
        if found is None or request.query_params.get("token") != found["order_token"]:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(found)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/checkout", self.checkout, methods=["POST"]),
                Route("/orders/{number}", self.order),
            ]
        )


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def code(self) -> str:
        found = re.search(r"code is (\d{6})", self.messages[-1].get_payload())
        assert found is not None
        return found.group(1)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()


def build(tmp_path: Path, smtp_port: int) -> tuple[PrivacyMiddleware, GuestShop]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        smtp={"host": "127.0.0.1", "port": smtp_port, "sender": "privacy@tea.example", "timeout_seconds": 5},
        outbound={"allow": ["127.0.0.1/32"]},  # the test mail server on loopback
        audit={"retention_interval_seconds": 0},
    )
    shop = GuestShop()
    runtime = Runtime(settings, policy=validate_policy(tomllib.loads(POLICY_TOML)))
    return PrivacyMiddleware(shop.app(), runtime=runtime), shop


@pytest.fixture
async def guest(
    tmp_path: Path, smtp: tuple[Mailbox, int], asgi_lifespan: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, GuestShop, Mailbox]]:
    app, shop = build(tmp_path, smtp[1])
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        yield client, shop, smtp[0]


async def test_guest_checkout_is_encrypted_and_the_guest_sees_it_in_clear(guest: Any) -> None:
    client, shop, _ = guest
    created = await client.post("/checkout", json=ORDER)
    assert created.status_code == 201, created.text
    assert created.json()["shipping"] == {"street": "7 Harbour Road"}
    assert created.json()["email"] == "Grace@Example.com"
    stored = shop.orders["1"]
    assert stored["shipping"]["street"].startswith("pe1.")
    assert stored["email"].endswith("@privacy.invalid")


async def test_the_order_link_makes_the_guest_the_owner_of_that_order(guest: Any) -> None:
    client, shop, _ = guest
    await client.post("/checkout", json=ORDER)
    token = shop.orders["1"]["order_token"]
    own = await client.get("/orders/1", params={"token": token})
    assert own.json()["shipping"]["street"] == "7 Harbour Road" and own.json()["email"] == "Grace@Example.com"
    other = await client.post("/checkout", json={**ORDER, "email": "eve@example.com", "shipping": {"street": "1 Elm"}})
    assert other.status_code == 201
    eve_link = shop.orders["2"]["order_token"]
    eves = (await client.get("/orders/2", params={"token": eve_link})).json()
    assert eves["shipping"]["street"] == "1 Elm" and eves["email"] == "eve@example.com"
    assert (await client.get("/orders/1", params={"token": eve_link})).status_code == 404
    without_link = await client.get("/orders/1", params={"token": "guessed"})
    assert without_link.status_code == 404 and "Harbour" not in without_link.text


async def test_the_same_guest_gets_one_subject_for_every_checkout(guest: Any) -> None:
    client, shop, _ = guest
    await client.post("/checkout", json=ORDER)
    await client.post("/checkout", json={**ORDER, "email": "grace@example.COM"})
    assert shop.orders["1"]["email"] == shop.orders["2"]["email"]  # deterministic token for one subject
    second = await client.get("/orders/2", params={"token": shop.orders["2"]["order_token"]})
    assert second.json()["shipping"]["street"] == "7 Harbour Road"


async def test_a_guest_proves_their_address_then_exports_and_erases(guest: Any) -> None:
    client, shop, mailbox = guest
    await client.post("/checkout", json=ORDER)
    link = shop.orders["1"]["order_token"]

    asked = await client.post("/privacy/guest/code", json={"email": "grace@example.com"})
    assert asked.status_code == 202
    [message] = mailbox.messages
    assert message["To"] == "grace@example.com" and message["From"] == "privacy@tea.example"
    wrong = await client.post("/privacy/guest/session", json={"email": "grace@example.com", "code": "000000x"})
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_code"
    session = await client.post("/privacy/guest/session", json={"email": "grace@example.com", "code": mailbox.code()})
    assert session.status_code == 200, session.text
    bearer = {"authorization": f"Bearer {session.json()['token']}"}
    reused = await client.post("/privacy/guest/session", json={"email": "grace@example.com", "code": mailbox.code()})
    assert reused.status_code == 400  # a code works once

    export = await client.get("/privacy/me/export", headers=bearer)
    assert export.status_code == 200, export.text
    assert export.json()["subject"].startswith("guest_")
    assert [t["category"] for t in export.json()["middleware"]["tokens"]] == ["user.contact.email"]

    erased = await client.post("/privacy/me/erasure", json={}, headers=bearer)
    assert erased.status_code == 200, erased.text
    assert erased.json()["status"] == "completed"
    after = await client.get("/orders/1", params={"token": link})
    assert "7 Harbour Road" not in after.text and "Grace" not in after.text


async def test_codes_are_rate_limited_and_die_after_too_many_wrong_tries(guest: Any) -> None:
    client, _, mailbox = guest
    for _ in range(3):
        assert (await client.post("/privacy/guest/code", json={"email": "x@example.com"})).status_code == 202
    limited = await client.post("/privacy/guest/code", json={"email": "x@example.com"})
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    code = mailbox.code()
    for _ in range(5):
        await client.post("/privacy/guest/session", json={"email": "x@example.com", "code": "nope"})
    late = await client.post("/privacy/guest/session", json={"email": "x@example.com", "code": code})
    assert late.status_code == 400


async def test_an_unreachable_mail_server_is_503(tmp_path: Path, asgi_lifespan: Any) -> None:
    app, _ = build(tmp_path, free_port())  # nothing listens there
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        response = await client.post("/privacy/guest/code", json={"email": "grace@example.com"})
    assert response.status_code == 503 and response.json()["code"] == "mail_unavailable"
    assert "grace" not in response.text
