"""Three small shops with the same two routes (checkout, order by reference), routed three ways:
an ASGI app that routes like Express (case-insensitive, lenient), Starlette (a mount and its own
parameter names), and Django REST Framework's DefaultRouter (with its `.json` format suffixes).
Each records what its checkout received, so tests can assert what reached the shop."""

from __future__ import annotations

import re
import time
import tomllib
from types import ModuleType
from typing import Any

import jwt
import orjson

from privacy_middleware.policy.load import validate_policy
from privacy_middleware.policy.schema import Policy

JWT_SECRET = "route-identity-test-secret-long-enough"
CARD = "4242424242424242"
STREET = "12 Marylebone Road"
ORDER = {"ref": "ord_1", "customer_id": "cus_1", "street": STREET, "card": {"number": CARD}}

POLICY_TOML = """
[policy]
name = "t"
version = "1"
effective_date = 2026-01-01

[categories]
"user.id" = {}
"user.financial.card.number" = {}
"user.financial.card.cvv" = {}
"user.contact.address.delivery.street" = {}

[purposes.order_fulfilment]
legal_basis = "contract"

[purposes.delivery]
legal_basis = "contract"

[recipients.logistics]
purposes = ["delivery"]
sees = { "user.contact.address.delivery.street" = "keep" }

[[routes]]
method = "POST"
path = "/api/checkout"
[[routes.request.fields]]
select = "card.number"
category = "user.financial.card.number"
transform = "encrypt"
validate_as = "card_number"

[[routes.request.fields]]
select = "card.cvv"
category = "user.financial.card.cvv"
transform = "strip"

[[routes.request.fields]]
select = "street"
category = "user.contact.address.delivery.street"
transform = "encrypt"

[[routes]]
method = "GET"
path = "/api/orders/{ref}"
[routes.response]
subject = "customer_id"
personal_objects = ["$", "card"]
fields = [
  { select = "customer_id", category = "user.id" },
  { select = "street", category = "user.contact.address.delivery.street" },
  { select = "card.number", category = "user.financial.card.number" },
]
"""
POLICY: dict[str, Any] = tomllib.loads(POLICY_TOML)


def policy() -> Policy:
    return validate_policy(POLICY)


def bearer(claims: dict[str, Any]) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 600, **claims}, JWT_SECRET, algorithm="HS256")
    return {"authorization": f"Bearer {token}"}


CUSTOMER = {"sub": "cus_1"}
CARRIER = {"sub": "carrier", "recipient": "logistics", "purpose": "delivery"}


CVV = "737"
# The CVV as a JSON value (a string or a number). Three digits alone also occur by chance inside
# ciphertext and key ids (base64), so a bare substring test would fail at random.
_CVV_VALUE = re.compile(rb'"737"|[:,\[]\s*737\s*[,}\]]')


def checkout_body() -> dict[str, Any]:
    return {"card": {"number": CARD, "cvv": CVV}, "street": STREET}


def in_clear(body: bytes) -> list[str]:
    """What of the checkout body these bytes carry in clear: the card number, the CVV, the street."""
    found = [name for name, value in (("card", CARD), ("street", STREET)) if value.encode() in body]
    return found + (["cvv"] if _CVV_VALUE.search(body) else [])


class LenientShop:
    """Routes like Express with its defaults: case-insensitive, `//` and a trailing slash ignored,
    `;params` dropped, `.json` accepted, percent-decoded again, dot segments resolved."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    @staticmethod
    def route(path: str) -> str:
        from urllib.parse import unquote

        path = unquote(path).replace("\\", "/")
        parts: list[str] = []
        for segment in path.split("/"):
            segment = segment.split(";", 1)[0]
            if segment in ("", "."):
                continue
            if segment == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(segment)
        return re.sub(r"\.(json|api|xml)$", "", "/" + "/".join(parts).lower())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        route = self.route(scope["path"])
        if route == "/api/checkout" and scope["method"] == "POST":
            self.received.append(body)
            status, payload = 201, {"ref": "ord_1", **orjson.loads(body)}
        elif route.startswith("/api/orders/") and scope["method"] == "GET":
            status, payload = 200, ORDER
        else:
            status, payload = 404, {"error": "not found"}
        data = orjson.dumps(payload)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def starlette_shop(received: list[bytes]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Mount, Route

    async def checkout(request: Request) -> Response:
        raw = await request.body()
        received.append(raw)
        return JSONResponse({"ref": "ord_1", **orjson.loads(raw)}, status_code=201)

    async def order(request: Request) -> Response:
        return JSONResponse({**ORDER, "ref": request.path_params["order_ref"]})

    api = [Route("/checkout", checkout, methods=["POST"]), Route("/orders/{order_ref}", order)]
    return Starlette(routes=[Mount("/api", routes=api)])


def fastapi_shop(received: list[bytes]) -> Any:
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.post("/api/checkout", status_code=201)
    async def checkout(request: Request) -> dict[str, Any]:
        raw = await request.body()
        received.append(raw)
        return {"ref": "ord_1", **orjson.loads(raw)}

    @app.get("/api/orders/{ref}")
    async def order(ref: str) -> dict[str, Any]:
        return {**ORDER, "ref": ref}

    @app.get("/api/products")
    async def products() -> list[str]:
        return []

    return app


DRF_RECEIVED: list[bytes] = []


def drf_urlconf() -> ModuleType:
    from django.urls import include, path
    from rest_framework import routers, viewsets
    from rest_framework.request import Request
    from rest_framework.response import Response

    class CheckoutViewSet(viewsets.ViewSet):
        def create(self, request: Request, format: str | None = None) -> Response:
            DRF_RECEIVED.append(orjson.dumps(request.data))
            return Response({"ref": "ord_1", **request.data}, status=201)

    class OrderViewSet(viewsets.ViewSet):
        lookup_field = "ref"

        def retrieve(self, request: Request, ref: str | None = None, format: str | None = None) -> Response:
            return Response({**ORDER, "ref": ref})

        def list(self, request: Request, format: str | None = None) -> Response:
            return Response([])

    router = routers.DefaultRouter()
    router.register("checkout", CheckoutViewSet, basename="checkout")
    router.register("orders", OrderViewSet, basename="order")
    module = ModuleType("privacy_test_drf_urls")
    module.urlpatterns = [path("api/", include(router.urls))]  # type: ignore[attr-defined]
    return module


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}


def configure_django(urlconf: Any) -> None:
    """Django's settings are process-wide: configure once, then point ROOT_URLCONF where asked
    (`urlconf` may be a callable building the module once Django is configured)."""
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
            REST_FRAMEWORK=REST_FRAMEWORK,
        )
        import django

        django.setup()
    settings.ROOT_URLCONF = urlconf() if callable(urlconf) else urlconf
    settings.REST_FRAMEWORK = REST_FRAMEWORK
    from django.urls import clear_url_caches

    clear_url_caches()
    try:
        from rest_framework.settings import api_settings

        api_settings.reload()
    except ImportError:
        pass


def fastapi_app() -> Any:
    """For `policy coverage --app support.shops:FASTAPI_APP`."""
    return fastapi_shop([])


def drf_app() -> Any:
    configure_django(drf_urlconf)
    from django.core.asgi import get_asgi_application

    return get_asgi_application()
