"""Reverse-proxy mode: header hygiene, streaming, cookie isolation, upstream failures, and the demo
shop served by its own uvicorn behind `PrivacyMiddleware(ProxyApp(...))`."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock, IteratorStream
from sqlalchemy.ext.asyncio import create_async_engine

import privacy_middleware
from privacy_middleware.asgi.proxy import (
    ProxyApp,
    UnforwardablePath,
    UpstreamAborted,
    end_to_end,
)
from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.demo.shop import SHOP_AUDIENCE, SHOP_ISSUER, DemoShop, orders
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.runtime import Runtime
from privacy_middleware.serve import build_proxy_app, create_app
from privacy_middleware.settings import JwtSettings, Settings

pytestmark = pytest.mark.anyio

BIG_CHUNK = b"\xab" * 65536
BIG_CHUNKS = 800  # 50 MiB


# --- a real upstream on loopback ---------------------------------------------------------------


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", ws="none", http="h11", access_log=False, proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("upstream server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class Upstream:
    """A raw ASGI shop that echoes what it received, sets cookies and streams large bodies."""

    def __init__(self) -> None:
        self.first_byte_seen = threading.Event()
        self.gate_opened: bool | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        digest = hashlib.sha256()
        size = 0
        while True:
            message = await receive()
            body = message.get("body", b"")
            digest.update(body)
            size += len(body)
            if not message.get("more_body"):
                break
        if path == "/big":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/octet-stream"),
                        (b"content-length", str(len(BIG_CHUNK) * BIG_CHUNKS).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": BIG_CHUNK, "more_body": True})
            # Hold the rest back until the client has seen the first bytes: a buffering proxy
            # would wait for the whole body and never let the gate open.
            self.gate_opened = await asyncio.to_thread(self.first_byte_seen.wait, 10)
            for i in range(1, BIG_CHUNKS):
                await send({"type": "http.response.body", "body": BIG_CHUNK, "more_body": i < BIG_CHUNKS - 1})
            return
        headers = [(b"content-type", b"application/json")]
        if path == "/login":
            user = scope["query_string"].decode().partition("=")[2]
            headers.append((b"set-cookie", f"session={user}; Path=/; HttpOnly".encode()))
        received = [[k.decode(), v.decode()] for k, v in scope["headers"]]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {
                "type": "http.response.body",
                "body": orjson.dumps(
                    {
                        "method": scope["method"],
                        "path": path,
                        "raw_path": scope["raw_path"].decode(),
                        "query": scope["query_string"].decode(),
                        "headers": received,
                        "size": size,
                        "sha256": digest.hexdigest(),
                    }
                ),
            }
        )


@pytest.fixture(params=["httpx", "aiohttp"])
def engine(request: pytest.FixtureRequest) -> str:
    """The proxy's upstream client: tests against a real upstream run with both."""
    return str(request.param)


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    app = Upstream()
    with serve_in_thread(app) as url:
        yield app, url


def header_values(echo: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in echo["headers"] if k == name]


async def asgi_call(
    app: Any,
    method: str,
    path: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: list[bytes] | None = None,
    on_body: Any = None,
) -> dict[str, Any]:
    """Drive an ASGI app directly (no client-side buffering); collect the start and body size."""
    chunks = list(body or [b""])
    result: dict[str, Any] = {"status": None, "headers": [], "size": 0, "messages": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result["status"] = message["status"]
            result["headers"] = message["headers"]
        elif message["type"] == "http.response.body":
            result["size"] += len(message.get("body", b""))
            result["messages"] += 1
            if on_body is not None:
                on_body(message)
            else:
                result["body"] += message.get("body", b"")

    path_only, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path_only),
        "raw_path": path_only.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers or [(b"host", b"shop.example")],
        "client": ("203.0.113.9", 50000),
        "server": ("127.0.0.1", 8080),
    }
    await app(scope, receive, send)
    return result


# --- header hygiene, exact requests (pytest-httpx) -----------------------------------------------


async def test_request_is_forwarded_with_hop_by_hop_removed_and_forwarded_added(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(
        method="POST",
        url="http://shop.internal:8080/api/items/a/b?q=1&x=%20",
        status_code=201,
        json={"ok": True},
    )
    proxy = ProxyApp("http://shop.internal:8080/api/")
    result = await asgi_call(
        proxy,
        "POST",
        "/items/a%2Fb?q=1&x=%20",
        headers=[
            (b"Host", b"shop.example"),
            (b"Connection", b"keep-alive, X-Private-Hop"),
            (b"X-Private-Hop", b"secret"),
            (b"Keep-Alive", b"timeout=5"),
            (b"TE", b"trailers"),
            (b"Upgrade", b"h2c"),
            (b"Proxy-Authorization", b"Basic Zm9vOmJhcg=="),
            (b"Expect", b"100-continue"),
            (b"X-Forwarded-For", b"198.51.100.7"),
            (b"Authorization", b"Bearer abc"),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"12"),
            (b"Cookie", b"session=u1"),
        ],
        body=[b'{"a":', b'"bcde"}'],
    )
    assert result["status"] == 201
    request = httpx_mock.get_request()
    assert request is not None
    names = [k.lower() for k, _ in request.headers.raw]
    for hop in (
        b"x-http-method-override",
        b"connection",
        b"x-private-hop",
        b"keep-alive",
        b"te",
        b"upgrade",
        b"proxy-authorization",
        b"expect",
        b"transfer-encoding",
    ):
        assert hop not in names
    assert request.headers["host"] == "shop.internal:8080"
    assert request.headers["x-forwarded-host"] == "shop.example"
    assert request.headers["x-forwarded-proto"] == "http"
    assert request.headers["x-forwarded-for"] == "198.51.100.7, 203.0.113.9"
    assert request.headers["forwarded"] == "for=203.0.113.9;proto=http;host=shop.example"
    assert request.headers["authorization"] == "Bearer abc"
    assert request.headers["cookie"] == "session=u1"
    assert request.headers.get_list("accept-encoding") == ["identity"]  # planned routes need plain JSON
    assert request.headers["content-length"] == "12"
    assert request.content == b'{"a":"bcde"}'


async def test_ipv6_client_is_quoted_in_forwarded_and_host_can_be_preserved(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url="http://shop.internal/", text="ok")
    proxy = ProxyApp("http://shop.internal", preserve_host=True)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await proxy(
        {
            "type": "http",
            "method": "GET",
            "scheme": "https",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "headers": [(b"host", b"www.shop.example")],
            "client": ("2001:db8::1", 1234),
        },
        receive,
        send,
    )
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["host"] == "www.shop.example"
    assert request.headers["forwarded"] == 'for="[2001:db8::1]";proto=https;host=www.shop.example'
    assert "content-length" not in request.headers and "transfer-encoding" not in request.headers
    assert sent[0]["status"] == 200


async def test_response_hop_by_hop_headers_are_removed_and_others_kept(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url="http://shop.internal/x",
        status_code=404,
        content=b"nope",
        headers=[
            ("Content-Type", "text/plain"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "5"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("ETag", '"v1"'),
        ],
    )
    result = await asgi_call(ProxyApp("http://shop.internal"), "GET", "/x")
    names = [k.lower() for k, _ in result["headers"]]
    assert result["status"] == 404 and result["body"] == b"nope"
    assert b"connection" not in names and b"x-hop" not in names and b"keep-alive" not in names
    assert [v for k, v in result["headers"] if k.lower() == b"set-cookie"] == [b"a=1", b"b=2"]
    assert (b"etag", b'"v1"') in [(k.lower(), v) for k, v in result["headers"]]


def test_end_to_end_drops_names_listed_in_connection_case_insensitively() -> None:
    headers = [(b"CONNECTION", b"Foo , bar"), (b"foo", b"1"), (b"Bar", b"2"), (b"baz", b"3")]
    assert end_to_end(headers) == [(b"baz", b"3")]


@pytest.mark.parametrize(
    "exc, status, code",
    [
        (httpx.ReadTimeout("slow"), 504, "upstream_timeout"),
        (httpx.ConnectTimeout("slow"), 504, "upstream_timeout"),
        (httpx.PoolTimeout("busy"), 504, "upstream_timeout"),
        (httpx.ConnectError("refused"), 502, "upstream_unavailable"),
        (httpx.RemoteProtocolError("garbage"), 502, "upstream_unavailable"),
    ],
)
async def test_upstream_failures_become_problem_json(
    httpx_mock: HTTPXMock, exc: Exception, status: int, code: str
) -> None:
    httpx_mock.add_exception(exc, url="http://shop.internal/orders?token=secret-value")
    result = await asgi_call(ProxyApp("http://shop.internal"), "GET", "/orders?token=secret-value")
    assert result["status"] == status
    problem = orjson.loads(result["body"])
    assert problem["code"] == code
    assert "secret-value" not in result["body"].decode()
    assert (b"content-type", b"application/problem+json") in result["headers"]


async def test_upstream_timeout_is_applied_per_request(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url="http://shop.internal/")
    async with httpx.AsyncClient() as shared:
        proxy = ProxyApp("http://shop.internal", client=shared, timeout=httpx.Timeout(1.5, connect=0.5))
        await asgi_call(proxy, "GET", "/")
        await proxy.aclose()  # a client passed in is the caller's to close
        assert not shared.is_closed
    request = httpx_mock.get_request()
    assert request is not None
    assert request.extensions["timeout"] == {"connect": 0.5, "read": 1.5, "write": 1.5, "pool": 1.5}


def test_upstream_url_must_be_absolute_http() -> None:
    for bad in ("shop.internal", "ftp://shop", "http://shop/?a=1"):
        with pytest.raises(ValueError):
            ProxyApp(bad)


async def test_lifespan_shutdown_closes_the_owned_client(asgi_lifespan: Any) -> None:
    proxy = ProxyApp("http://shop.internal")
    async with asgi_lifespan(proxy):
        assert not proxy.client.is_closed
    assert proxy.client.is_closed


async def test_websocket_is_closed_not_proxied() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    await ProxyApp("http://shop.internal")({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert sent[0]["type"] == "websocket.close"


# --- a real upstream: streaming and cookies -----------------------------------------------------


async def test_large_download_streams_without_buffering(
    upstream: tuple[Upstream, str], tmp_path: Path, engine: str
) -> None:
    shop, url = upstream
    proxy = ProxyApp(url, client_engine=engine)
    app = PrivacyMiddleware(
        proxy,
        Settings(
            policy_file=demo_policy_path(),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
            data_dir=tmp_path,
            jwt={"secret": "x" * 40, "algorithms": ["HS256"]},
        ),
    )
    first_byte_at: list[float] = []
    largest = 0

    def on_body(message: dict[str, Any]) -> None:
        nonlocal largest
        chunk = message.get("body", b"")
        largest = max(largest, len(chunk))
        if chunk and not first_byte_at:
            first_byte_at.append(time.perf_counter())
            shop.first_byte_seen.set()

    tracemalloc.start()
    try:
        started = time.perf_counter()
        result = await asgi_call(app, "GET", "/big", on_body=on_body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await app.runtime.stop()
        await proxy.aclose()
    assert result["status"] == 200
    assert result["size"] == len(BIG_CHUNK) * BIG_CHUNKS
    assert shop.gate_opened is True  # the first bytes reached the client before the rest was sent
    assert first_byte_at[0] - started < 5
    assert largest <= 1024 * 1024
    assert peak < 12 * 1024 * 1024, f"peak {peak} bytes while relaying 50 MiB"


async def test_large_upload_is_streamed_with_its_length(upstream: tuple[Upstream, str], engine: str) -> None:
    _, url = upstream
    proxy = ProxyApp(url, client_engine=engine)
    chunks = [bytes([i]) * 262144 for i in range(20)]  # 5 MiB in 20 messages
    total = sum(map(len, chunks))
    result = await asgi_call(
        proxy,
        "PUT",
        "/upload",
        headers=[
            (b"host", b"shop.example"),
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(total).encode()),
        ],
        body=chunks,
    )
    await proxy.aclose()
    echo = orjson.loads(result["body"])
    assert echo["size"] == total
    assert echo["sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert header_values(echo, "content-length") == [str(total)]
    assert header_values(echo, "transfer-encoding") == []


async def test_a_users_set_cookie_never_reaches_another_users_request(
    upstream: tuple[Upstream, str], engine: str
) -> None:
    _, url = upstream
    proxy = ProxyApp(url, client_engine=engine)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://shop") as alice,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://shop") as bob,
    ):
        login = await alice.get("/login?user=alice")
        assert login.headers["set-cookie"].startswith("session=alice")
        bob_echo = (await bob.get("/echo")).json()
        assert header_values(bob_echo, "cookie") == []
        alice_echo = (await alice.get("/echo")).json()
        assert header_values(alice_echo, "cookie") == ["session=alice"]  # her own browser sent it
        both = await asyncio.gather(*(bob.get("/echo") for _ in range(5)), alice.get("/login?user=mallory"))
        assert all(header_values(r.json(), "cookie") == [] for r in both[:5])
    assert len(proxy.client.cookies.jar) == 0
    if engine == "aiohttp":
        assert len(proxy._aiohttp._open().cookie_jar) == 0
    await proxy.aclose()


async def test_upstream_receives_the_path_the_middleware_matched(upstream: tuple[Upstream, str], engine: str) -> None:
    _, url = upstream
    proxy = ProxyApp(url, client_engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://shop") as client:
        echo = (await client.get("/files/a%2Fb%20c%C3%A9?x=%2F&y=1")).json()
    await proxy.aclose()
    assert echo["raw_path"] == "/files/a/b%20c%C3%A9"  # canonical: an encoded slash is a slash
    assert echo["query"] == "x=%2F&y=1"  # the query is forwarded as sent


@pytest.mark.parametrize("path", ["/x/../orders", "/orders/./1", "/x/..", "//orders", "/orders//1", "/a\\..\\orders"])
async def test_paths_the_shop_could_resolve_differently_are_refused(
    httpx_mock: HTTPXMock, tmp_path: Path, path: str
) -> None:
    shop = DemoShop(tmp_path / "shop")
    app = PrivacyMiddleware(ProxyApp("http://shop.internal"), runtime=Runtime(demo_settings(tmp_path, shop)))
    result = await asgi_call(app, "GET", path)  # decoded like a server would; nothing reaches the shop
    await app.runtime.stop()
    await shop.engine.dispose()
    assert result["status"] == 400
    # A spelling of a planned route is refused before its plan runs, any other by the proxy.
    assert orjson.loads(result["body"])["code"] in ("ambiguous_path", "bad_request_target")
    assert httpx_mock.get_requests() == []


# --- the demo shop behind the proxy ------------------------------------------------------------


def demo_settings(data_dir: Path, shop: DemoShop) -> Settings:
    return Settings(
        policy_file=demo_policy_path(),
        database_url=f"sqlite+aiosqlite:///{data_dir / 'privacy.db'}",
        keys=f"local://{data_dir / 'keyring.json'}",
        data_dir=data_dir,
        jwt=JwtSettings(
            issuer=SHOP_ISSUER, audience=SHOP_AUDIENCE, algorithms=["EdDSA"], public_key=shop.public_key_pem
        ),
    )


def order_document(customer_id: str) -> dict[str, Any]:
    order_id = f"ord_{uuid.uuid4().hex[:12]}"
    return {
        "id": order_id,
        "customer_id": customer_id,
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
        "payment": {
            "card": {
                "number_last4": "4242",
                "number_brand": "visa",
                "exp_month": 12,
                "exp_year": 2030,
                "holder": "Ada Lovelace",
            }
        },
        "note": "Leave by the door",
        "created_at": datetime.now(UTC).isoformat(),
    }


@pytest.fixture
def demo_shop(tmp_path: Path) -> Iterator[tuple[DemoShop, str]]:
    shop = DemoShop(tmp_path / "shop")
    with serve_in_thread(shop.app) as url:
        yield shop, url


async def test_demo_policy_works_unchanged_in_proxy_mode(
    demo_shop: tuple[DemoShop, str], tmp_path: Path, asgi_lifespan: Any
) -> None:
    shop, url = demo_shop
    app = PrivacyMiddleware(ProxyApp(url), runtime=Runtime(demo_settings(tmp_path, shop)))
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as client,
    ):
        registered = await client.post(
            "/auth/register",
            json={
                "email": "ada@example.com",
                "password": "correct horse",
                "name": "Ada",
                "birth_date": "1990-04-01",
            },
        )
        assert registered.status_code == 201
        login = await client.post("/auth/login", json={"email": "ada@example.com", "password": "correct horse"})
        assert login.status_code == 200
        customer_id, token = login.json()["id"], login.json()["token"]

        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'shop' / 'shop.db'}")
        try:
            async with engine.begin() as conn:
                document = order_document(customer_id)
                await conn.execute(
                    orders.insert().values(
                        id=document["id"],
                        customer_id=customer_id,
                        document=document,
                        created_at=datetime.now(UTC),
                    )
                )
        finally:
            await engine.dispose()

        own = (await client.get("/orders", headers={"authorization": f"Bearer {token}"})).json()["orders"][0]
        assert own["customer"]["email"] == "ada@example.com"
        assert own["note"] == "Leave by the door"

        partner = await client.post(
            "/partners/token", json={"client_id": "logistics-co", "client_secret": "demo-partner-secret"}
        )
        partner_token = partner.json()["access_token"]
        response = await client.get("/orders", headers={"authorization": f"Bearer {partner_token}"})
        assert response.status_code == 200
        assert "Authorization" in response.headers["vary"] or "authorization" in response.headers["vary"].lower()
        seen = response.json()["orders"][0]
        assert seen["shipping_address"] == {
            "name": "Ada Lovelace",
            "street": "1 Tea Lane",
            "city": "Leeds",
            "postal_code": "LS1 1AA",
            "country": "GB",
            "phone": "+44 113 496 0000",
        }
        assert "email" not in seen.get("customer", {})
        assert "customer_id" not in seen
        assert "note" not in seen
        assert seen["billing_address"] == {}  # never the billing address
        assert seen["payment"]["card"] == {}  # no card data
        assert seen["total"] == 17.0 and seen["status"] == "paid"

        products = await client.get("/products")
        assert products.status_code == 200 and products.json()["products"]


async def test_upstream_down_is_502_while_privacy_api_stays_up(tmp_path: Path, asgi_lifespan: Any, engine: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"  # bound, never listening: refused
        shop = DemoShop(tmp_path / "shop")
        app = PrivacyMiddleware(ProxyApp(dead, client_engine=engine), runtime=Runtime(demo_settings(tmp_path, shop)))
        async with (
            asgi_lifespan(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as client,
        ):
            for path in ("/products", "/orders"):
                down = await client.get(path)
                assert down.status_code == 502
                assert down.headers["content-type"] == "application/problem+json"
                assert down.json()["code"] == "upstream_unavailable"
            assert (await client.get("/privacy/health")).json()["status"] == "ok"
            assert (await client.get("/privacy/policy")).json()["version"] == "2026.11"
        await shop.engine.dispose()


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/html; charset=utf-8", b"<html><td>Ada Lovelace, 1 Tea Lane</td></html>"),
        ("application/json", b'{"orders": [{"customer": {"email": "ada@example.com"'),
    ],
)
async def test_non_json_upstream_answer_on_planned_route_fails_closed(
    httpx_mock: HTTPXMock, tmp_path: Path, content_type: str, body: bytes
) -> None:
    httpx_mock.add_response(url="http://shop.internal/orders", content=body, headers={"content-type": content_type})
    shop = DemoShop(tmp_path / "shop")
    app = PrivacyMiddleware(ProxyApp("http://shop.internal"), runtime=Runtime(demo_settings(tmp_path, shop)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as client:
        response = await client.get("/orders")
    await app.runtime.stop()
    await shop.engine.dispose()
    assert response.status_code == 502
    assert response.json()["code"] in {"response_not_json", "malformed_response"}
    assert b"Ada" not in response.content and b"ada@example.com" not in response.content


async def test_compressed_upstream_answer_on_planned_route_fails_closed(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    import gzip

    secret = gzip.compress(b'{"orders": [{"note": "Leave by the door"}]}')
    httpx_mock.add_response(
        url="http://shop.internal/orders",
        content=secret,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    shop = DemoShop(tmp_path / "shop")
    app = PrivacyMiddleware(ProxyApp("http://shop.internal"), runtime=Runtime(demo_settings(tmp_path, shop)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as client:
        response = await client.get("/orders", headers={"accept-encoding": "gzip"})
    await app.runtime.stop()
    await shop.engine.dispose()
    assert response.status_code == 502
    assert response.json()["code"] == "response_not_filterable"
    assert secret not in response.content


# --- serve ---------------------------------------------------------------------------------------


def test_serve_parser_and_factory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from privacy_middleware.cli import build_parser
    from privacy_middleware.errors import ConfigError

    args = build_parser().parse_args(
        [
            "serve",
            "--upstream",
            "http://127.0.0.1:3000",
            "--workers",
            "2",
            "--port",
            "9000",
            "--preserve-host",
        ]
    )
    assert (args.upstream, args.workers, args.port, args.preserve_host) == (
        "http://127.0.0.1:3000",
        2,
        9000,
        True,
    )
    monkeypatch.setenv("PRIVACY_POLICY_FILE", str(demo_policy_path()))
    monkeypatch.setenv("PRIVACY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    monkeypatch.setenv("PRIVACY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PRIVACY_PROXY_UPSTREAM", raising=False)
    with pytest.raises(ConfigError):
        create_app()
    monkeypatch.setenv("PRIVACY_PROXY_UPSTREAM", "http://127.0.0.1:3000/shop")
    monkeypatch.setenv("PRIVACY_PROXY_TIMEOUT", "2.5")
    app = create_app()
    assert isinstance(app.app, ProxyApp)
    assert app.app.prefix == b"/shop"
    assert app.app.timeout.read == 2.5
    assert app.identity.kind == "canonical"  # aliases placed by the one canonicaliser
    with pytest.raises(ConfigError):
        build_proxy_app("not a url")


async def test_upstream_failure_mid_body_aborts_instead_of_truncating_silently(httpx_mock: HTTPXMock) -> None:
    def broken() -> Iterator[bytes]:
        yield b"first part"
        raise httpx.ReadError("connection reset")

    httpx_mock.add_response(
        url="http://shop.internal/file",
        stream=IteratorStream(broken()),
        headers={"content-type": "application/octet-stream", "content-length": "100"},
    )
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    with pytest.raises(UpstreamAborted):
        await ProxyApp("http://shop.internal")(
            {
                "type": "http",
                "method": "GET",
                "path": "/file",
                "raw_path": b"/file",
                "query_string": b"",
                "headers": [],
                "client": ("203.0.113.9", 1),
            },
            receive,
            send,
        )
    assert messages[0]["status"] == 200
    assert [m.get("body") for m in messages[1:]] == [b"first part"]
    assert all(m.get("more_body") for m in messages[1:])  # never a clean end


async def test_client_disconnect_during_upload_stops_quietly(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url="http://shop.internal/upload", is_optional=True)
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "http.request", "body": b"part", "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await ProxyApp("http://shop.internal")(
        {
            "type": "http",
            "method": "POST",
            "path": "/upload",
            "raw_path": b"/upload",
            "query_string": b"",
            "headers": [(b"content-length", b"100")],
            "client": ("203.0.113.9", 1),
        },
        receive,
        send,
    )
    assert sent == []


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_command_runs_the_proxy_under_uvicorn(
    upstream: tuple[Upstream, str], tmp_path: Path, workers: int
) -> None:
    _, url = upstream
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(privacy_middleware.__file__).parents[1]),
        "PRIVACY_POLICY_FILE": str(demo_policy_path()),
        "PRIVACY_DATA_DIR": str(tmp_path),
        "PRIVACY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        "PRIVACY_JWT__SECRET": "x" * 40,
        "PRIVACY_JWT__ALGORITHMS": "HS256",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "privacy_middleware.cli",
            "serve",
            "--upstream",
            url,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90  # two workers start slowly on a busy 2-core machine
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/privacy/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("serve did not start") from None
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        echo = httpx.get(f"http://127.0.0.1:{port}/echo?x=1", headers={"host": "shop.example"}).json()
        assert echo["query"] == "x=1"
        assert header_values(echo, "x-forwarded-host") == ["shop.example"]
        assert header_values(echo, "forwarded") == ["for=127.0.0.1;proto=http;host=shop.example"]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert b"Traceback" not in stderr


HEADER_NAME = st.sampled_from(
    [
        b"connection",
        b"Keep-Alive",
        b"TE",
        b"trailer",
        b"Transfer-Encoding",
        b"Upgrade",
        b"proxy-authorization",
        b"Proxy-Connection",
        b"x-custom",
        b"X-Other",
        b"accept",
        b"cookie",
        b"content-type",
    ]
)


@settings(max_examples=200, deadline=None)
@given(headers=st.lists(st.tuples(HEADER_NAME, st.binary(max_size=20).filter(lambda v: b"\n" not in v)), max_size=12))
def test_end_to_end_keeps_exactly_the_non_hop_by_hop_headers_in_order(
    headers: list[tuple[bytes, bytes]],
) -> None:
    named = {
        token.strip().lower() for key, value in headers if key.lower() == b"connection" for token in value.split(b",")
    }
    fixed = {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-connection",
    }
    kept = end_to_end(headers)
    assert kept == [(k, v) for k, v in headers if k.lower() not in fixed | named]


@functools.cache
def target_proxy() -> ProxyApp:
    return ProxyApp("http://shop.internal:8080/base")  # built once: a client costs an SSL context


@settings(max_examples=150, deadline=None)
@given(
    segments=st.lists(
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6),
        min_size=1,
        max_size=4,
    ),
    query=st.binary(max_size=30),
)
def test_target_is_the_matched_path_or_a_refusal(segments: list[str], query: bytes) -> None:
    from urllib.parse import unquote_to_bytes

    path = "/" + "/".join(segments)
    risky = any(s in (".", "..") for s in path[1:].split("/")) or "//" in path or "\\" in path or "\x00" in path
    scope = {"path": path, "raw_path": b"ignored", "query_string": query}
    if risky:
        with pytest.raises(UnforwardablePath):
            target_proxy().target(scope)
        return
    url = target_proxy().target(scope)
    assert url.host == "shop.internal" and url.port == 8080
    sent_path, _, sent_query = url.raw_path.partition(b"?")
    assert unquote_to_bytes(sent_path) == b"/base" + path.encode()
    # Escapes may be normalised (httpx also escapes `<`, `"`...), but the decoded bytes never change.
    assert unquote_to_bytes(sent_query) == unquote_to_bytes(query)


async def test_a_target_that_cannot_be_forwarded_is_400() -> None:
    result = await asgi_call(ProxyApp("http://shop.internal"), "OPTIONS", "*")
    assert result["status"] == 400
    assert orjson.loads(result["body"])["code"] == "bad_request_target"


@pytest.mark.parametrize(
    "method, path, planned",
    [
        ("GET", "/orders", True),
        ("GET", "/orders/ORD_AbC", True),
        ("GET", "/products", False),
        ("GET", "/Products/", False),  # no variant is planned: nothing to bypass
        ("GET", "/Orders", True),
        ("GET", "/orders/", True),
        ("GET", "/ORDERS/ord_1", True),
        ("GET", "/Me/", True),
        ("GET", "/orders.json", True),
        ("GET", "/orders;jsessionid=1", True),
        ("DELETE", "/Orders", False),  # no DELETE plan
        ("GET", "/?rest_route=/orders", False),  # only /wp-json routes have a rest_route alias
    ],
)
async def test_aliases_of_planned_routes_get_their_plan_in_proxy_mode(
    httpx_mock: HTTPXMock, tmp_path: Path, method: str, path: str, planned: bool
) -> None:
    httpx_mock.add_response(json={"ok": True}, is_optional=True)
    shop = DemoShop(tmp_path / "shop")
    proxy = ProxyApp("http://shop.internal")
    app = PrivacyMiddleware(proxy, runtime=Runtime(demo_settings(tmp_path, shop)))
    result = await asgi_call(
        app,
        method,
        path,
        headers=[(b"host", b"shop.example"), (b"content-type", b"application/json")],
        body=[b"{}"],
    )
    await app.runtime.stop()
    await proxy.aclose()
    await shop.engine.dispose()
    headers = dict(result["headers"])
    # A planned response is filtered for the caller: its cache is private and varies by caller.
    assert (b"authorization" in headers.get(b"vary", b"").lower()) is planned


async def test_an_alias_of_checkout_is_protected_in_proxy_mode(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(json={"ok": True}, is_optional=True)
    shop = DemoShop(tmp_path / "shop")
    proxy = ProxyApp("http://shop.internal")
    app = PrivacyMiddleware(proxy, runtime=Runtime(demo_settings(tmp_path, shop)))
    for path in ("/Checkout", "/checkout.json", "/checkout;x=1", "//checkout", "/./checkout", "/%2Fcheckout"):
        result = await asgi_call(
            app,
            "POST",
            path,
            headers=[(b"host", b"shop.example"), (b"content-type", b"application/json")],
            body=[b'{"payment": {"card": {"cvv": "737"}}}'],
        )
        assert result["status"] in (400, 401, 422), (path, result["status"])
    await app.runtime.stop()
    await proxy.aclose()
    await shop.engine.dispose()
    assert httpx_mock.get_requests() == []


def test_wordpress_rest_route_alias_of_a_planned_route_is_placed() -> None:
    from importlib import resources

    from privacy_middleware.policy.compile import compile_policy
    from privacy_middleware.policy.load import load_policy
    from privacy_middleware.routing.canonical import AliasTable

    preset = Path(str(resources.files("privacy_middleware.integrations.woocommerce").joinpath("preset.toml")))
    specs = compile_policy(load_policy(preset)).entries()
    table = AliasTable((spec.method, spec.template, spec) for spec in specs)
    assert table.place("GET", "/", b"rest_route=/wc/v3/orders") is not None
    assert table.place("GET", "/index.php", b"rest_route=%2Fwc%2Fv3%2Fcustomers%2F25") is not None
    assert table.place("GET", "/", b"a=1&rest_route=/WC/v3/Orders") is not None
    assert table.place("GET", "/", b"rest_route=/wc/v3/products") is None
    assert table.place("GET", "/shop/", b"") is None
