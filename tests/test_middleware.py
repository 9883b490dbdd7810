"""The ASGI contract of the middleware (DESIGN.md §5): each rule has a test here."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio

POLICY: dict[str, Any] = {
    "policy": {"name": "t", "version": "1", "effective_date": "2026-01-01"},
    "categories": {
        "user.name": {},
        "user.contact.email": {},
        "user.financial.card.cvv": {},
        "user.id": {},
    },
    "purposes": {"order_fulfilment": {"legal_basis": "contract"}},
    "recipients": {
        "support": {
            "purposes": ["order_fulfilment"],
            "sees": {"user.name": "keep", "user.contact.email": "mask:email"},
        }
    },
    "identity": {"scope_recipients": {"staff": "support"}},
    "routes": [
        {
            "method": "POST",
            "path": "/pay",
            "request": {
                "fields": [{"select": "card.cvv", "category": "user.financial.card.cvv", "transform": "strip"}]
            },
        },
        {
            "method": "GET",
            "path": "/people/{pid}",
            "response": {
                "subject": "id",
                "personal_objects": ["$"],
                "fields": [
                    {"select": "id", "category": "user.id"},
                    {"select": "name", "category": "user.name"},
                    {"select": "email", "category": "user.contact.email"},
                ],
            },
        },
    ],
}


class Recorder:
    """An inner app that records what it received and answers what the test tells it to."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.response: list[dict[str, Any]] = []
        self.after_body: list[dict[str, Any]] = []

    def answer(self, status: int, body: bytes | list[bytes], headers: list[tuple[bytes, bytes]], **start: Any) -> None:
        chunks = body if isinstance(body, list) else [body]
        self.response = [{"type": "http.response.start", "status": status, "headers": headers, **start}]
        for i, chunk in enumerate(chunks):
            self.response.append({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("this app cannot handle lifespan")  # like Django
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append({"headers": scope["headers"], "body": body, "path": scope["path"]})
        for message in self.response or [
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]},
            {"type": "http.response.body", "body": b"ok"},
        ]:
            await send(message)


@pytest.fixture
def inner() -> Recorder:
    return Recorder()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        max_body_bytes=4096,
        max_response_bytes=4096,
        jwt={"secret": "test-secret-that-is-long-enough-32b", "algorithms": ["HS256"], "audience": "shop"},
    )


@pytest.fixture
async def client(inner: Recorder, settings: Settings) -> Any:
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    app = PrivacyMiddleware(inner, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as c:
        yield c
    await runtime.stop()


async def test_route_without_plan_passes_through_untouched(client: httpx.AsyncClient, inner: Recorder) -> None:
    inner.answer(200, b"not json at all", [(b"content-type", b"text/plain"), (b"etag", b'"abc"')])
    response = await client.post("/unplanned", content=b"\x00raw", headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.content == b"not json at all"
    assert response.headers["etag"] == '"abc"'
    assert "vary" not in response.headers
    assert inner.seen[0]["body"] == b"\x00raw"


async def test_cvv_is_stripped_and_content_length_fixed(client: httpx.AsyncClient, inner: Recorder) -> None:
    body = {"card": {"cvv": "123", "holder": "Ada"}, "amount": 5}
    response = await client.post("/pay", json=body)
    assert response.status_code == 200
    forwarded = inner.seen[0]
    assert orjson.loads(forwarded["body"]) == {"card": {"holder": "Ada"}, "amount": 5}
    lengths = [v for k, v in forwarded["headers"] if k == b"content-length"]
    assert lengths == [str(len(forwarded["body"])).encode()]


async def test_body_over_cap_is_413_and_not_forwarded(client: httpx.AsyncClient, inner: Recorder) -> None:
    response = await client.post(
        "/pay", content=b'{"a":"' + b"x" * 5000 + b'"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "body_too_large"
    assert inner.seen == []


async def test_streamed_body_over_cap_without_length_is_413(client: httpx.AsyncClient, inner: Recorder) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 1000

    response = await client.post("/pay", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert inner.seen == []


@pytest.mark.parametrize(
    ("content", "ctype", "status", "code"),
    [
        (b"cvv=123", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"card": {"cvv": "123"', "application/json", 400, "malformed_json"),
    ],
)
async def test_unparseable_body_on_planned_route_is_refused(
    client: httpx.AsyncClient, inner: Recorder, content: bytes, ctype: str, status: int, code: str
) -> None:
    response = await client.post("/pay", content=content, headers={"content-type": ctype})
    assert response.status_code == status
    assert response.json()["code"] == code
    assert "123" not in response.text
    assert inner.seen == []


async def test_compressed_request_body_on_planned_route_is_refused(client: httpx.AsyncClient, inner: Recorder) -> None:
    body = gzip.compress(b'{"card": {"cvv": "123"}}')
    response = await client.post(
        "/pay", content=body, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert response.status_code == 415
    assert inner.seen == []


async def test_json_content_type_variants_are_accepted(client: httpx.AsyncClient, inner: Recorder) -> None:
    response = await client.post(
        "/pay",
        content=b'{"card":{"cvv":"1"}}',
        headers={"Content-Type": "application/merge-patch+json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert orjson.loads(inner.seen[0]["body"]) == {"card": {}}


async def test_response_is_filtered_for_anonymous_caller(client: httpx.AsyncClient, inner: Recorder) -> None:
    inner.answer(
        200,
        orjson.dumps({"id": "c1", "name": "Ada", "email": "ada@example.com", "shoe": 38}),
        [(b"Content-Type", b"application/json"), (b"ETag", b'"v1"'), (b"content-length", b"67")],
    )
    response = await client.get("/people/c1")
    assert response.status_code == 200
    assert response.json() == {}
    assert "etag" not in response.headers
    assert response.headers["cache-control"] == "private"
    assert "Authorization" in response.headers["vary"] and "Cookie" in response.headers["vary"]
    assert response.headers["content-length"] == str(len(response.content))


async def test_a_planned_route_answered_again_and_again_is_filtered_each_time(
    client: httpx.AsyncClient, inner: Recorder
) -> None:
    """The header edits, viewer and look-ups the route keeps after its first answer: a tiny answer with
    none of the rules' keys still gets the plan's headers (and loses the key the personal object does
    not declare), and one with them is still filtered."""
    headers = [(b"content-type", b"application/json"), (b"etag", b'"v1"'), (b"content-length", b"10")]
    for _ in range(3):
        inner.answer(200, b'{"shoe":38}', list(headers))
        tiny = await client.get("/people/c1")
        assert tiny.status_code == 200 and tiny.json() == {}
        assert tiny.headers["cache-control"] == "private" and "etag" not in tiny.headers
        assert "Authorization" in tiny.headers["vary"]
        assert tiny.headers["content-length"] == str(len(tiny.content))
        inner.answer(200, orjson.dumps({"id": "c1", "name": "Ada", "email": "ada@example.com"}), list(headers))
        filtered = await client.get("/people/c1")
        assert filtered.status_code == 200 and filtered.json() == {}
        assert filtered.headers["content-length"] == str(len(filtered.content))


async def test_response_chunks_are_reassembled_before_filtering(client: httpx.AsyncClient, inner: Recorder) -> None:
    payload = orjson.dumps({"id": "c1", "name": "Ada", "email": "ada@example.com"})
    inner.answer(200, [payload[:10], payload[10:30], payload[30:], b""], [(b"content-type", b"application/json")])
    response = await client.get("/people/c1")
    assert response.json() == {}


@pytest.mark.parametrize(
    ("status", "headers", "body", "code"),
    [
        (200, [(b"content-type", b"application/json")], b'{"id": "c1", "name": ', "malformed_response"),
        (
            200,
            [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")],
            gzip.compress(b'{"id":"c1","name":"Ada"}'),
            "response_not_filterable",
        ),
        (200, [(b"content-type", b"text/html")], b"<p>Ada</p>", "response_not_json"),
        (206, [(b"content-type", b"application/json")], b'{"name":"Ada"}', "response_not_filterable"),
        (
            200,
            [(b"content-type", b"application/json")],
            b'{"name":"' + b"A" * 5000 + b'"}',
            "response_too_large",
        ),
    ],
)
async def test_unfilterable_response_fails_closed(
    client: httpx.AsyncClient, inner: Recorder, status: int, headers: Any, body: bytes, code: str
) -> None:
    inner.answer(status, body, headers)
    response = await client.get("/people/c1")
    assert response.status_code == 502
    assert response.json()["code"] == code
    assert "Ada" not in response.text


async def test_non_json_error_keeps_status_but_not_body(client: httpx.AsyncClient, inner: Recorder) -> None:
    inner.answer(500, b"Traceback: user ada@example.com", [(b"content-type", b"text/plain")])
    response = await client.get("/people/c1")
    assert response.status_code == 500
    assert "ada@" not in response.text
    assert response.json()["code"] == "upstream_error"


@pytest.mark.parametrize("status", [204, 304])
async def test_bodyless_statuses_pass_through(client: httpx.AsyncClient, inner: Recorder, status: int) -> None:
    inner.answer(status, b"", [(b"etag", b'"v1"')])
    response = await client.get("/people/c1")
    assert response.status_code == status
    assert response.headers["etag"] == '"v1"'


async def test_head_passes_through(client: httpx.AsyncClient, inner: Recorder) -> None:
    inner.answer(200, b"", [(b"content-type", b"application/json"), (b"content-length", b"40")])
    response = await client.head("/people/c1")
    assert response.status_code == 200
    assert response.headers["content-length"] == "40"


async def test_streaming_sse_on_unplanned_route_is_not_buffered(settings: Settings) -> None:
    sent: list[dict[str, Any]] = []

    async def sse(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        # The first event must already be downstream before the app produces the next one.
        assert len(sent) == 2
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})

    runtime = Runtime(settings, policy=validate_policy(POLICY))
    app = PrivacyMiddleware(sse, runtime=runtime)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/events", "headers": [], "client": ("1.2.3.4", 1)}
    await app(scope, receive, send)
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n"]
    await runtime.stop()


async def test_pathsend_and_trailers_are_forwarded(settings: Settings) -> None:
    sent: list[dict[str, Any]] = []

    async def app_with_trailers(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "trailers": True,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id":"c1","name":"Ada"}', "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"1")], "more_trailers": False})

    runtime = Runtime(settings, policy=validate_policy(POLICY))
    app = PrivacyMiddleware(app_with_trailers, runtime=runtime)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(
        {"type": "http", "method": "GET", "path": "/people/c1", "headers": [], "client": ("1.2.3.4", 1)},
        receive,
        send,
    )
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
    ]
    assert sent[0]["trailers"] is True
    assert orjson.loads(sent[1]["body"]) == {}
    await runtime.stop()


async def test_replayed_body_then_delegates_to_real_receive(settings: Settings) -> None:
    """After the replayed body the app must see the real next message, never an invented disconnect."""
    received: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(await receive())
        received.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages = [
        {"type": "http.request", "body": b'{"card":', "more_body": True},
        {"type": "http.request", "body": b'{"cvv":"1"}}', "more_body": False},
        {"type": "http.disconnect", "marker": "real"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        pass

    runtime = Runtime(settings, policy=validate_policy(POLICY))
    mw = PrivacyMiddleware(app, runtime=runtime)
    await mw(
        {
            "type": "http",
            "method": "POST",
            "path": "/pay",
            "client": ("1.2.3.4", 1),
            "headers": [(b"content-type", b"application/json")],
        },
        receive,
        send,
    )
    assert received[0] == {"type": "http.request", "body": b'{"card":{}}', "more_body": False}
    assert received[1] == {"type": "http.disconnect", "marker": "real"}
    await runtime.stop()


async def test_websocket_passes_through(settings: Settings) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    runtime = Runtime(settings, policy=validate_policy(POLICY))
    await PrivacyMiddleware(app, runtime=runtime)({"type": "websocket", "path": "/people/c1"}, None, None)  # type: ignore[arg-type]
    assert seen == ["websocket"]


async def test_lifespan_is_answered_when_app_cannot(settings: Settings) -> None:
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    mw = PrivacyMiddleware(Recorder(), runtime=runtime)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await mw({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert runtime.started is False


async def test_an_unreachable_store_at_start_is_a_warning_and_503_on_the_routes_that_need_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(database_url="postgresql://u:hunter2@127.0.0.1:1/x", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    inner = Recorder()
    mw = PrivacyMiddleware(inner, runtime=runtime)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with caplog.at_level(logging.WARNING, logger="privacy_middleware"):
        await mw({"type": "lifespan"}, receive, send)
    # A server with several workers stops them all when one fails to start: the store is a warning.
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    warning = " ".join(r.getMessage() for r in caplog.records if "without the privacy store" in r.getMessage())
    assert "127.0.0.1:1/x" in warning and "hunter2" not in caplog.text
    assert runtime.started is False

    inner.answer(200, orjson.dumps({"id": "c1", "name": "Ada"}), [(b"content-type", b"application/json")])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://shop") as client:
        planned = await client.get("/people/c1")
        health = await client.get("/privacy/health")
        unplanned = await client.get("/products")
    for refused in (planned, health):
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "store_unavailable"
        assert "hunter2" not in refused.text and "127.0.0.1" not in refused.text
    assert [seen["path"] for seen in inner.seen] == ["/products"]  # the planned route never reached the app
    assert unplanned.status_code == 200
