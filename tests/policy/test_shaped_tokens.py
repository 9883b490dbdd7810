"""Format-shaped tokens for fields the shop validates: e-mail, E.164 phone, digits, card alias.

The shop below refuses anything that is not a valid e-mail address, E.164 number, card number
(Luhn) or 8-digit loyalty number, as a real shop's validation would; the middleware must still keep
the values out of it, give the owner the real values back, and send them to a declared provider."""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from privacy_middleware.crypto.cards import luhn_valid
from privacy_middleware.crypto.shaped import card_alias
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio

SECRET = "shaped-token-test-secret-0123456789abcdef"
MAIL_API = "https://api.mail.example/v3/send"
POLICY_TOML = """
[policy]
name = "t"
version = "1"
effective_date = "2026-01-01"

[tokens]
email_domain = "tokens.shop.invalid"

[categories."user.contact.email"]
[categories."user.contact.phone"]
[categories."user.financial.card.number"]
[categories."user.loyalty"]
[categories."user.id"]

[purposes.order_fulfilment]
legal_basis = "contract"

[recipients.mail_provider]
purposes = ["order_fulfilment"]
hosts = ["api.mail.example"]
sees = { "user.contact.email" = "keep" }

[[recipients.mail_provider.endpoints]]
method = "POST"
path = "/v3/send"
request = { subject = "customer_id", fields = [
  { select = "to", category = "user.contact.email", token_format = "email" },
  { select = "customer_id", category = "user.id" },
] }

[shapes.customer]
subject = "id"
personal_objects = ["$"]
fields = [
  { select = "id", category = "user.id" },
  { select = "email", category = "user.contact.email", token_format = "email" },
  { select = "phone", category = "user.contact.phone", token_format = "phone" },
  { select = "card", category = "user.financial.card.number", token_format = "card_alias" },
  { select = "loyalty", category = "user.loyalty", token_format = "digits", token_length = 8 },
]

[[routes]]
method = "POST"
path = "/customers"
purpose = "order_fulfilment"
[routes.request]
fields = [
  { select = "email", category = "user.contact.email", transform = "tokenise", token_format = "email", \
    validate_as = "email", deterministic = true },
  { select = "phone", category = "user.contact.phone", transform = "tokenise", token_format = "phone", \
    validate_as = "phone" },
  { select = "card", category = "user.financial.card.number", transform = "tokenise", \
    token_format = "card_alias", validate_as = "card_number" },
  { select = "loyalty", category = "user.loyalty", transform = "tokenise", token_format = "digits", token_length = 8 },
]

[[routes]]
method = "GET"
path = "/customers/{cid}"
response = { shape = "customer" }
"""
EMAIL = re.compile(r"^[a-z0-9._+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class ValidatingShop:
    """Stores customers only if every field passes the shop's own validation."""

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.mail: httpx.AsyncClient | None = None

    async def create(self, request: Request) -> JSONResponse:
        body = await request.json()
        errors = []
        if not EMAIL.match(body["email"]):
            errors.append("Enter a valid email address.")
        if not E164.match(body["phone"]):
            errors.append("Enter a valid phone number.")
        if not luhn_valid(body["card"]):
            errors.append("Enter a valid card number.")
        if not re.fullmatch(r"[1-9][0-9]{7}", body["loyalty"]):
            errors.append("Loyalty numbers have 8 digits.")
        if errors:
            return JSONResponse({"errors": errors}, status_code=400)
        cid = request.headers["x-customer"]
        self.customers[cid] = {"id": cid, **body}
        if self.mail is not None:  # the shop sends its confirmation through its mail provider
            await self.mail.post(MAIL_API, json={"to": body["email"], "customer_id": cid, "template": "welcome"})
        return JSONResponse(self.customers[cid], status_code=201)

    async def read(self, request: Request) -> JSONResponse:
        return JSONResponse(self.customers[request.path_params["cid"]])

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/customers", self.create, methods=["POST"]),
                Route("/customers/{cid}", self.read),
            ]
        )


def auth(sub: str) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"sub": sub, "iat": now, "exp": now + 300}, SECRET, algorithm="HS256")
    return {"authorization": f"Bearer {token}", "x-customer": sub}


CUSTOMER = {"email": "Ada@Example.com", "phone": "+441134960000", "card": "4242424242424242", "loyalty": "12345678"}


@pytest.fixture
async def shop(tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[tuple[httpx.AsyncClient, ValidatingShop, Runtime]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": SECRET, "algorithms": ["HS256"]},
        audit={"retention_interval_seconds": 0},
    )
    runtime = Runtime(settings, policy=validate_policy(tomllib.loads(POLICY_TOML)))
    inner = ValidatingShop()
    app = PrivacyMiddleware(inner.app(), runtime=runtime)
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        yield client, inner, runtime


async def test_shaped_tokens_pass_the_shops_validation_and_hide_the_values(shop: Any) -> None:
    client, inner, _ = shop
    created = await client.post("/customers", json=CUSTOMER, headers=auth("c1"))
    assert created.status_code == 201, created.text
    stored = inner.customers["c1"]
    assert stored["email"].endswith("@tokens.shop.invalid") and "ada" not in stored["email"].lower()
    assert stored["phone"].startswith("+999") and len(stored["phone"]) == 16 and stored["phone"] != CUSTOMER["phone"]
    assert stored["card"][:6] == "424242" and stored["card"][-4:] == "4242" and stored["card"] != CUSTOMER["card"]
    assert luhn_valid(stored["card"])
    assert re.fullmatch(r"[1-9][0-9]{7}", stored["loyalty"]) and stored["loyalty"] != CUSTOMER["loyalty"]


async def test_the_owner_reads_the_real_values_and_others_do_not(shop: Any) -> None:
    client, _inner, _ = shop
    await client.post("/customers", json=CUSTOMER, headers=auth("c1"))
    own = (await client.get("/customers/c1", headers=auth("c1"))).json()
    assert own == {"id": "c1", **CUSTOMER, "card": "\u2022" * 12 + "4242"}  # the card: brand and last four only
    stranger = (await client.get("/customers/c1", headers=auth("c2"))).json()
    assert CUSTOMER["email"] not in str(stranger) and CUSTOMER["card"] not in str(stranger)


async def test_deterministic_tokens_repeat_per_subject_so_lookups_keep_working(shop: Any) -> None:
    client, inner, _ = shop
    await client.post("/customers", json=CUSTOMER, headers=auth("c1"))
    first = inner.customers["c1"]
    await client.post("/customers", json={**CUSTOMER, "email": "ada@example.COM"}, headers=auth("c1"))
    again = inner.customers["c1"]
    assert again["email"] == first["email"]  # same subject, same (normalised) address: same token
    assert again["phone"] != first["phone"]  # not deterministic: a fresh random token
    await client.post("/customers", json=CUSTOMER, headers=auth("c9"))
    assert inner.customers["c9"]["email"] != first["email"]  # another subject: another token


async def test_the_shops_mail_provider_gets_the_real_address_through_privacy_transport(
    shop: Any, httpx_mock: HTTPXMock
) -> None:
    client, inner, runtime = shop
    httpx_mock.add_response(url=MAIL_API, method="POST", json={"queued": True})
    from privacy_middleware.transport import PrivacyTransport

    async with httpx.AsyncClient(transport=PrivacyTransport(runtime, httpx.AsyncHTTPTransport())) as mail:
        inner.mail = mail
        created = await client.post("/customers", json=CUSTOMER, headers=auth("c1"))
    assert created.status_code == 201
    [sent] = httpx_mock.get_requests()
    assert b'"to":"Ada@Example.com"' in sent.content
    assert inner.customers["c1"]["email"].endswith("@tokens.shop.invalid")


async def test_erasure_makes_every_shaped_token_meaningless(shop: Any) -> None:
    client, _inner, runtime = shop
    await client.post("/customers", json=CUSTOMER, headers=auth("c1"))
    service = await runtime.keys.get()
    result = await service.erase_subject("c1")
    assert result.tokens_destroyed == 4
    own = (await client.get("/customers/c1", headers=auth("c1"))).json()
    assert CUSTOMER["email"] not in str(own) and CUSTOMER["card"] not in str(own)


def test_a_digits_token_needs_a_length() -> None:
    document = tomllib.loads(POLICY_TOML)
    document["routes"][0]["request"]["fields"][3]["token_length"] = 0
    with pytest.raises(Exception, match="token_length"):
        validate_policy(document)


@given(st.sampled_from(["4", "51", "37", "6011"]), st.integers(min_value=13, max_value=19), st.data())
def test_card_aliases_keep_six_and_four_and_pass_luhn(start: str, length: int, data: st.DataObject) -> None:
    body = data.draw(st.text("0123456789", min_size=length - len(start) - 1, max_size=length - len(start) - 1))
    partial = start + body
    pan = next(partial + d for d in "0123456789" if luhn_valid(partial + d))
    alias = card_alias(pan)
    assert len(alias) == len(pan) and alias != pan
    assert alias[:6] == pan[:6] and alias[-4:] == pan[-4:]
    assert luhn_valid(alias)
