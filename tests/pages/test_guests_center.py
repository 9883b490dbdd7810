"""A guest (no account) reaches the privacy centre with a one-time code e-mailed to the address they
ordered with: a real SMTP server on loopback receives the code, the browser-like client trades it for
a guest session, and the guest downloads their data."""

from __future__ import annotations

import email
import re
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
from support.pages import csrf_of
from support.servers import free_port

pytestmark = pytest.mark.anyio

CENTER = "/privacy/center"
POLICY = """
[policy]
name = "Guest Tea"
version = "1"
effective_date = "2026-01-01"

[categories."user.contact.email"]
[categories."user.id"]

[purposes.order_fulfilment]
legal_basis = "contract"

[[routes]]
method = "POST"
path = "/checkout"
purpose = "order_fulfilment"
[routes.request]
fields = [
  { select = "email", category = "user.contact.email", transform = "tokenise", token_format = "email", \
    validate_as = "email", deterministic = true },
]

[guests]
checkouts = [{ path = "/checkout", email = "email", capability = "order_token" }]
"""


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def code(self) -> str:
        found = re.search(r"\b(\d{6})\b", str(self.messages[-1].get_payload()))
        assert found is not None
        return found.group(1)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


async def checkout(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({**body, "number": "1", "order_token": "t-1"}, status_code=201)


@pytest.fixture
async def client(tmp_path: Path, mailbox: tuple[Mailbox, int], asgi_lifespan: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        smtp={"host": "127.0.0.1", "port": mailbox[1], "sender": "privacy@tea.example", "timeout_seconds": 5},
        outbound={"allow": ["127.0.0.1/32"]},  # the test mail server on loopback
        consent={"secure_cookie": False},
        audit={"retention_interval_seconds": 0},
    )
    runtime = Runtime(settings, policy=validate_policy(tomllib.loads(POLICY)))
    app = PrivacyMiddleware(Starlette(routes=[Route("/checkout", checkout, methods=["POST"])]), runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with asgi_lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
        yield http


async def test_a_guest_signs_in_with_an_emailed_code_and_downloads_their_data(
    client: httpx.AsyncClient, mailbox: tuple[Mailbox, int]
) -> None:
    assert (await client.post("/checkout", json={"email": "grace@example.com"})).status_code == 201
    signin = await client.get(CENTER + "/signin")
    assert 'action="/privacy/center/guest/code"' in signin.text
    asked = await client.post(CENTER + "/guest/code", data={"csrf": csrf_of(signin.text), "email": "grace@example.com"})
    assert asked.status_code == 200 and 'name="code"' in asked.text
    wrong = await client.post(
        CENTER + "/guest/session",
        data={"csrf": csrf_of(asked.text), "email": "grace@example.com", "code": "000000x"},
    )
    assert wrong.status_code == 400 and "wrong or has expired" in wrong.text
    again = await client.post(CENTER + "/guest/code", data={"csrf": csrf_of(signin.text), "email": "grace@example.com"})
    session = await client.post(
        CENTER + "/guest/session",
        data={"csrf": csrf_of(again.text), "email": "grace@example.com", "code": mailbox[0].code()},
    )
    assert session.status_code == 303 and session.headers["location"] == CENTER + "/data"
    data = await client.get(CENTER + "/data")
    assert data.status_code == 200 and "Download my data" in data.text
    export = await client.post(CENTER + "/export", data={"csrf": csrf_of(data.text)})
    assert export.status_code == 200 and export.json()["subject"].startswith("guest_")
