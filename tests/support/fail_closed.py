"""Real shops behind the middleware for the fail-closed property tests (tests/properties).

Each target is one shop with the same routes as support/shops.py (`POST /api/checkout` with a card
and a street the policy protects, `GET /api/orders/{ref}` filtered for a logistics partner, and an
unplanned `POST /api/reviews`), routed by its own framework:

- `starlette`: a FastAPI app (Starlette's router) in process;
- `drf`: Django REST Framework's `DefaultRouter` (with its `.json` format-suffix routes) in process;
- `proxy`: `privacy-middleware serve`'s app (the middleware around the reverse proxy) in front of a
  real uvicorn on loopback running a shop that routes like Express (case-insensitive, `;params`
  dropped, `.json` accepted, dot segments resolved, percent-decoded once more);
- `canonical`: that lenient shop in process, an app with no router the middleware can ask (the
  canonicaliser places its spellings).

Every shop records what reached it: each raw body the app received (`bodies`) and each body its
checkout handler read (`checkouts`). `leaks()` says what in a body would be protected data in clear
for a shop that reads keys leniently (NFKC, case-blind, every duplicate) — written independently of
the middleware's own readers, so the properties do not test the code against itself.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import anyio.from_thread
import httpx
import orjson
from starlette.requests import Request  # at module level: FastAPI resolves the handlers' annotations here

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.settings import Settings
from support import shops

CARDS = ("4242424242424242", "5555555555554444", "378282246310005", "6011111111111117")
CVV = "7391"
STREET = shops.STREET
CUSTOMER_ID = "cus_1"
ORDER = {"ref": "ord_1", "customer_id": CUSTOMER_ID, "street": STREET, "card": {"number": CARDS[0]}}
CODE_NAMES = frozenset({"cvv", "cvv2", "cvc", "cvc2", "csc", "cid", "securitycode", "cardsecuritycode"})
SHOP_HEADER = "x-recorded-by-shop"


# --- what counts as protected data in clear ------------------------------------------------------


def _fold(key: str) -> str:
    return re.sub(r"[^0-9a-z]", "", unicodedata.normalize("NFKC", key).casefold())


def _pairs(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return items  # every member, duplicates included, in order


def _walk(node: Any, path: tuple[str, ...], out: list[str]) -> None:
    if isinstance(node, list) and all(isinstance(i, tuple) and len(i) == 2 for i in node) and node:
        members: list[tuple[Any, Any]] = node
    elif isinstance(node, list):
        for item in node:
            _walk(item, (*path, "[]"), out)
        return
    else:
        _scalar(node, path, out)
        return
    for key, value in members:
        folded = _fold(key)
        if folded in CODE_NAMES and value not in (None, "", []):
            out.append(f"card code under {'.'.join((*path, key))!r}")
        _scalar(key, path, out)
        _walk(value, (*path, folded), out)


def _scalar(value: Any, path: tuple[str, ...], out: list[str]) -> None:
    if isinstance(value, bool) or value is None:
        return
    text = str(value)
    digits = re.sub(r"[\s\-]", "", text)
    if any(card in digits for card in CARDS):
        out.append(f"card number at {'.'.join(path)!r}")
    if path and path[0] == "street" and STREET.casefold() in unicodedata.normalize("NFKC", text).casefold():
        out.append("street in clear")


def leaks(body: bytes) -> list[str]:
    """Protected values in clear in a request body as a lenient shop would read it."""
    if not body:
        return []
    try:
        document = json.loads(body, object_pairs_hook=_pairs)
    except ValueError:
        text = body.decode("utf-8", "replace")
        found = [f"card number in unparsed body {card[-4:]}" for card in CARDS if card in re.sub(r"[\s\-]", "", text)]
        if STREET in unquote(text.replace("+", " ")):
            found.append("street in unparsed body")
        return found
    out: list[str] = []
    # An empty object parses to [] with the pairs hook; a bare list of pairs cannot be told from
    # an object, which is the lenient reading anyway.
    _walk(document, (), out)
    return out


def response_leaks(text: str) -> list[str]:
    """What a logistics partner must never see in an order."""
    return [what for what, value in (("card", CARDS[0]), ("customer id", CUSTOMER_ID)) if value in text]


# --- the shops -----------------------------------------------------------------------------------


@dataclass
class Records:
    bodies: list[bytes] = field(default_factory=list)
    checkouts: list[bytes] = field(default_factory=list)

    def clear(self) -> None:
        self.bodies.clear()
        self.checkouts.clear()


class Recorder:
    """ASGI wrapper: records every body the shop receives and marks the shop's own answers."""

    def __init__(self, app: Any, records: Records) -> None:
        self.app = app  # `.app`: the middleware still finds the router behind it
        self.records = records

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        done = False

        async def recording_receive() -> Any:
            nonlocal done
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body") and not done:
                    done = True
                    self.records.bodies.append(b"".join(chunks))
            return message

        async def marking_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (SHOP_HEADER.encode(), b"1")]}
            await send(message)

        await self.app(scope, recording_receive, marking_send)


def fastapi_shop(records: Records) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/api/checkout", status_code=201)
    async def checkout(request: Request) -> dict[str, Any]:
        records.checkouts.append(await request.body())
        return {"ref": "ord_1"}

    @app.get("/api/orders/{ref}")
    @app.get("/api/orders/{ref}.json")  # one handler, two routes (this one first): both are its plan's
    async def order(ref: str) -> dict[str, Any]:
        return {**ORDER, "ref": ref}

    @app.post("/api/reviews", status_code=201)
    async def review(request: Request) -> dict[str, Any]:
        await request.body()
        return {"ok": True}

    return app


def drf_urlconf(records: Records) -> ModuleType:
    from django.urls import include, path
    from rest_framework import routers, viewsets
    from rest_framework.response import Response

    class CheckoutViewSet(viewsets.ViewSet):
        def create(self, request: Request, format: str | None = None) -> Response:
            records.checkouts.append(request.body)  # raw, before DRF parses it
            return Response({"ref": "ord_1"}, status=201)

    class OrderViewSet(viewsets.ViewSet):
        lookup_field = "ref"

        def retrieve(self, request: Request, ref: str | None = None, format: str | None = None) -> Response:
            return Response({**ORDER, "ref": ref})

    class ReviewViewSet(viewsets.ViewSet):
        def create(self, request: Request, format: str | None = None) -> Response:
            return Response({"ok": True}, status=201)

    router = routers.DefaultRouter()
    router.register("checkout", CheckoutViewSet, basename="checkout")
    router.register("orders", OrderViewSet, basename="order")
    router.register("reviews", ReviewViewSet, basename="review")
    module = ModuleType("privacy_property_drf_urls")
    module.urlpatterns = [path("api/", include(router.urls))]  # type: ignore[attr-defined]
    return module


class LenientShop:
    """Routes like Express with lenient options: case-insensitive, `//`, dot segments and a
    trailing slash ignored, `;params` dropped, `.json`/`.xml`/`.api` accepted, percent-decoded once
    more, the method in any case, Unicode normalised (NFKC, case folding)."""

    def __init__(self, records: Records) -> None:
        self.records = records

    @staticmethod
    def route(path: str) -> str:
        path = unicodedata.normalize("NFKC", unquote(path)).replace("\\", "/")
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
        return re.sub(r"\.(json|api|xml)$", "", "/" + "/".join(parts).casefold())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        route, method = self.route(scope["path"]), scope["method"].upper()
        if route == "/api/checkout" and method == "POST":
            self.records.checkouts.append(body)
            status, payload = 201, {"ref": "ord_1"}
        elif route.startswith("/api/orders/") and route.count("/") == 3 and method == "GET":
            status, payload = 200, ORDER
        elif route == "/api/reviews" and method == "POST":
            status, payload = 201, {"ok": True}
        else:
            status, payload = 404, {"error": "not found"}
        data = orjson.dumps(payload)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


@contextmanager
def upstream_on_loopback(app: Any) -> Iterator[str]:
    """A real uvicorn on a free loopback port (TCP_NODELAY: no delayed-ACK stall per request)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", http="h11", ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the upstream shop did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# --- a target: the shop behind the middleware, driven from synchronous hypothesis tests ----------


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    text: str

    @property
    def from_shop(self) -> bool:
        return SHOP_HEADER in self.headers

    def problem_code(self) -> str:
        if self.from_shop or not self.headers.get("content-type", "").startswith("application/problem+json"):
            return ""
        return str(self.problem().get("code", ""))

    def problem(self) -> dict[str, Any]:
        return dict(json.loads(self.text)) if self.text else {}


@dataclass
class Target:
    name: str
    records: Records
    app: PrivacyMiddleware
    portal: Any
    client: httpx.AsyncClient

    def send(self, method: str, raw_path: str, *, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
        """One request with its path exactly as spelled (httpx would normalise it)."""

        async def go() -> Answer:
            request = self.client.build_request(method, "http://shop.example/", content=body, headers=headers)
            request.method = method  # as sent: httpx upper-cases it, a server passes it on as it came
            target, _, query = raw_path.partition("?")
            request.url = request.url.copy_with(raw_path=raw_path.encode("ascii"))
            if query:
                request.url = request.url.copy_with(raw_path=target.encode("ascii") + b"?" + query.encode("ascii"))
            response = await self.client.send(request)
            return Answer(response.status_code, response.headers, response.text)

        self.records.clear()
        return self.portal.call(go)  # type: ignore[no-any-return]


def settings(data: Path) -> Settings:
    policy = data / "policy.toml"
    policy.write_text(shops.POLICY_TOML)
    return Settings(
        database_url=f"sqlite+aiosqlite:///{data / 'privacy.db'}",
        data_dir=data,
        policy_file=policy,
        jwt={"secret": shops.JWT_SECRET, "algorithms": ["HS256"]},
    )


@contextmanager
def target(name: str, data: Path) -> Iterator[Target]:
    """The named shop behind the middleware, its lifespan started, on an event loop of its own."""
    from conftest import lifespan

    records = Records()
    with ExitStack() as stack:
        if name == "starlette":
            app = PrivacyMiddleware(Recorder(fastapi_shop(records), records), settings(data))
        elif name == "drf":
            from django.conf import settings as django_settings

            previous = django_settings.ROOT_URLCONF if django_settings.configured else None
            shops.configure_django(lambda: drf_urlconf(records))
            if previous is not None:
                stack.callback(shops.configure_django, previous)
            from django.core.asgi import get_asgi_application

            app = PrivacyMiddleware(Recorder(get_asgi_application(), records), settings(data))
        elif name == "proxy":
            from privacy_middleware.serve import build_proxy_app

            upstream = stack.enter_context(upstream_on_loopback(Recorder(LenientShop(records), records)))
            app = build_proxy_app(upstream, settings(data), timeout=30)
        elif name == "canonical":
            app = PrivacyMiddleware(Recorder(LenientShop(records), records), settings(data))
        elif name == "mounted":  # Starlette's router reaches the mount; the mounted app routes the rest
            from starlette.applications import Starlette
            from starlette.routing import Mount

            mounted = Starlette(routes=[Mount("/api", app=LenientShop(records))])
            app = PrivacyMiddleware(Recorder(mounted, records), settings(data))
        else:
            raise ValueError(name)
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
        stack.enter_context(portal.wrap_async_context_manager(lifespan(app)))
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://shop.example", timeout=30)
        stack.callback(lambda: portal.call(client.aclose))
        yield Target(name, records, app, portal, client)


def bearer(claims: dict[str, Any]) -> dict[str, str]:
    return shops.bearer(claims)


def customer() -> dict[str, str]:
    return {**bearer(shops.CUSTOMER), "content-type": "application/json"}


def carrier() -> dict[str, str]:
    return bearer(shops.CARRIER)
