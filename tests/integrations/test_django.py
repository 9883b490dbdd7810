"""In-process use around a Django project under Django's own ASGI handler, and the same behaviour
tests against the equivalent Starlette shop: filtering per recipient, request-body rewriting
(CVV stripped, Content-Length fixed), mixed-case header names, and lifespan answered by the
middleware because Django raises on it."""

from __future__ import annotations

import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.policy.schema import Policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio

JWT_SECRET = "django-test-secret-long-enough-for-hs256"
RECEIVED: list[dict[str, Any]] = []  # what the shop's checkout view was given, per test

ORDER = {
    "id": "ord_1",
    "customer_id": "cus_1",
    "status": "paid",
    "total": 17.0,
    "currency": "EUR",
    "items": [{"sku": "TEA-001", "qty": 2}],
    "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
    "shipping_address": {
        "name": "Ada Lovelace",
        "street": "1 Tea Lane",
        "city": "Leeds",
        "postal_code": "LS1 1AA",
        "country": "GB",
        "phone": "+44 113 496 0000",
    },
    "billing_address": {
        "name": "Ada Lovelace",
        "street": "2 Bill Road",
        "city": "York",
        "postal_code": "YO1 1AA",
        "country": "GB",
    },
    "payment": {"card": {"number_last4": "4242", "number_brand": "visa", "holder": "Ada Lovelace"}},
    "note": "Leave by the door",
}


def demo_policy_without_encryption() -> Policy:
    """The demo policy, with checkout's `encrypt` turned into `keep` (the key service is tested
    elsewhere); validation, CVV stripping and every response rule are unchanged."""
    document = tomllib.loads(demo_policy_path().read_text())
    for route in document["routes"]:
        for rule in (route.get("request") or {}).get("fields", []):
            if rule.get("transform") == "encrypt":
                rule["transform"] = "keep"
    return validate_policy(document)


# --- the same shop twice: Django views and Starlette endpoints ----------------------------------


def django_app() -> Any:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="django-insecure-test-only",
            ALLOWED_HOSTS=["*"],
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            DATABASES={},
            USE_TZ=True,
            ROOT_URLCONF="",
        )
    # Settings are process-wide and other tests route elsewhere: point them at this shop each time.
    urlconf = ModuleType("privacy_test_django_urls")
    urlconf.urlpatterns = django_urls()  # type: ignore[attr-defined]
    settings.ROOT_URLCONF = urlconf
    from django.urls import clear_url_caches

    clear_url_caches()
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def django_urls() -> list[Any]:
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    def orders(request: HttpRequest) -> HttpResponse:
        response = JsonResponse({"orders": [ORDER]})
        response["X-Shop-Trace"] = "django"
        response["Cache-Control"] = "max-age=60"
        return response

    @csrf_exempt
    def checkout(request: HttpRequest) -> HttpResponse:
        body = orjson.loads(request.body)
        RECEIVED.append({"body": body, "content_length": request.META.get("CONTENT_LENGTH")})
        return HttpResponse(orjson.dumps({**ORDER, **body}), status=201, content_type="application/json")

    return [path("orders", orders), path("checkout", checkout)]


def starlette_app() -> Starlette:
    async def orders(request: Request) -> Response:
        return Response(
            orjson.dumps({"orders": [ORDER]}),
            media_type="application/json",
            headers={"X-Shop-Trace": "starlette", "Cache-Control": "max-age=60"},
        )

    async def checkout(request: Request) -> Response:
        raw = await request.body()
        body = orjson.loads(raw)
        RECEIVED.append({"body": body, "content_length": request.headers.get("content-length")})
        return Response(orjson.dumps({**ORDER, **body}), status_code=201, media_type="application/json")

    return Starlette(routes=[Route("/orders", orders), Route("/checkout", checkout, methods=["POST"])])


@pytest.fixture(params=["django", "starlette"])
async def shop(request: pytest.FixtureRequest, tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[httpx.AsyncClient]:
    RECEIVED.clear()
    inner = django_app() if request.param == "django" else starlette_app()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": JWT_SECRET, "algorithms": ["HS256"]},
    )
    app = PrivacyMiddleware(inner, runtime=Runtime(settings, policy=demo_policy_without_encryption()))
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as client,
    ):
        yield client


def bearer(claims: dict[str, Any]) -> dict[str, str]:
    now = int(time.time())
    return {
        "authorization": "Bearer " + jwt.encode({"iat": now, "exp": now + 600, **claims}, JWT_SECRET, algorithm="HS256")
    }


CARRIER = {"sub": "logistics-co", "recipient": "logistics", "purpose": "delivery", "scope": "orders:read"}
CUSTOMER = {"sub": "cus_1"}


async def test_django_raises_on_lifespan_so_the_middleware_answers_it() -> None:
    app = django_app()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    with pytest.raises(ValueError):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert messages == []  # Django itself never answers; the `shop` fixture's lifespan passing proves ours


async def test_orders_are_filtered_for_the_carrier(shop: httpx.AsyncClient) -> None:
    response = await shop.get("/orders", headers=bearer(CARRIER))
    assert response.status_code == 200
    seen = response.json()["orders"][0]
    assert seen["shipping_address"] == ORDER["shipping_address"]
    assert "email" not in seen["customer"] and "customer_id" not in seen and "note" not in seen
    assert seen["billing_address"] == {}
    assert seen["payment"]["card"] == {}
    assert seen["items"] == ORDER["items"]
    assert int(response.headers["content-length"]) == len(response.content)
    assert "authorization" in response.headers["vary"].lower()
    assert response.headers["x-shop-trace"] in {"django", "starlette"}  # other headers kept, any case


async def test_customer_sees_their_own_order_in_full(shop: httpx.AsyncClient) -> None:
    response = await shop.get("/orders", headers=bearer(CUSTOMER))
    assert response.json()["orders"][0] == ORDER


async def test_anonymous_caller_sees_no_personal_data(shop: httpx.AsyncClient) -> None:
    seen = (await shop.get("/orders")).json()["orders"][0]
    assert seen["shipping_address"] == {} and seen["customer"] == {}
    assert seen["total"] == 17.0


async def test_checkout_strips_the_cvv_and_fixes_content_length(shop: httpx.AsyncClient) -> None:
    body = {
        "items": [{"sku": "TEA-001", "qty": 1}],
        "payment": {
            "card": {
                "number": "4242 4242 4242 4242",
                "cvv": "123",
                "exp_month": 12,
                "exp_year": 2030,
                "holder": "Ada Lovelace",
            }
        },
        "shipping_address": {"name": "Ada", "street": "1 Tea Lane", "phone": "+44 113 496 0000"},
        "customer": {"email": "ada@example.com"},
        "note": "Leave by the door",
    }
    raw = orjson.dumps(body)
    response = await shop.post(
        "/checkout", content=raw, headers={**bearer(CUSTOMER), "Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    received = RECEIVED[-1]
    card = received["body"]["payment"]["card"]
    assert "cvv" not in card
    assert card["holder"] == "Ada Lovelace" and card["exp_year"] == 2030
    assert int(received["content_length"]) == len(orjson.dumps(received["body"]))
    assert "cvv" not in response.json()["payment"]["card"]


@pytest.mark.parametrize(
    "body",
    [
        {"payment": {"card": {"number": "4242 4242 4242 4241", "cvv": "123"}}},  # fails the Luhn check
        {"payment": {"card": {"cvv": "123"}}},  # the card number is required
    ],
)
async def test_checkout_refusals_never_reach_the_shop(shop: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await shop.post("/checkout", json=body, headers=bearer(CUSTOMER))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert RECEIVED == []
    assert "4242" not in response.text and "4000" not in response.text


async def test_malformed_and_non_json_bodies_on_checkout_are_refused(shop: httpx.AsyncClient) -> None:
    broken = await shop.post(
        "/checkout", content=b'{"payment":', headers={**bearer(CUSTOMER), "content-type": "application/json"}
    )
    form = await shop.post(
        "/checkout",
        content=b"card=4242424242424242",
        headers={**bearer(CUSTOMER), "CONTENT-TYPE": "application/x-www-form-urlencoded"},
    )
    assert broken.status_code == 400 and form.status_code == 415
    assert RECEIVED == []
