"""The card-data sentinel on responses (DESIGN.md §9), over real HTTP: a shop under uvicorn on
loopback behind the middleware. JSON answered on a route without a response plan leaves with its
card numbers masked to the last four digits, unless the route is a payment recipient's and that
recipient is calling."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from support.servers import uvicorn_in_thread

SECRET = "card-responses-test-secret-of-32-bytes-or-more"
PAN, OTHER = "4111 1111 1111 1111", 5555555555554444
ORDER = {"order": "ORD-2026000000000001", "memo": f"paid with {PAN}", "card": OTHER, "items": [{"sku": "TEA-1"}]}

POLICY: dict[str, Any] = {
    "policy": {"name": "cards", "version": "1", "effective_date": "2026-01-01"},
    "categories": {"user.id": {}, "user.financial.card.number": {"sensitive": True}},
    "purposes": {"payment": {"legal_basis": "contract"}},
    "recipients": {"payment": {"purposes": ["payment"], "sees": {"user.financial.card": "keep"}}},
    "cards": {"payment_routes": [{"method": "GET", "path": "/payments/{pid}", "recipient": "payment"}]},
}


def gzip_pieces(*texts: bytes) -> list[bytes]:
    """One gzip stream cut into pieces a client can decode as they come (sync flush per piece)."""
    packer = zlib.compressobj(wbits=31)
    pieces = [packer.compress(text) + packer.flush(zlib.Z_SYNC_FLUSH) for text in texts]
    pieces[-1] += packer.flush()
    return pieces


async def order(request: Request) -> Response:
    return JSONResponse(ORDER, headers={"etag": '"v1"'})


# The same card numbers in full-width and Arabic-Indic digits: Python's int() reads both as numbers.
def in_digits(text: str, zero: int) -> str:
    return text.translate({ord("0") + d: zero + d for d in range(10)})


WIDE = {"memo": "paid with " + in_digits(PAN, 0xFF10), "city": "Besançon"}
ARABIC = {"card": in_digits(str(OTHER), 0x0660)}


async def other_digits(request: Request) -> Response:
    return JSONResponse(WIDE if request.path_params["kind"] == "wide" else ARABIC)


async def clean(request: Request) -> Response:
    return JSONResponse({"order": "ORD-2026000000000001", "total": 1234}, headers={"etag": '"v2"'})


async def gzipped(request: Request) -> Response:
    body = gzip.compress(orjson.dumps(ORDER))
    return Response(body, media_type="application/json", headers={"content-encoding": "gzip"})


async def deflated(request: Request) -> Response:
    body = zlib.compress(orjson.dumps({"clean": True, "n": 12}))
    return Response(body, media_type="application/json", headers={"content-encoding": "deflate"})


async def brotli(request: Request) -> Response:
    return Response(b"\x0b\x02\x80{}\x03", media_type="application/json", headers={"content-encoding": "br"})


async def streamed(request: Request) -> Response:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"rows": [{"memo": "card 4111 11'
        yield b"11 1111 1111"
        yield b' thanks"}, {"n": ' + str(OTHER).encode()[:7]
        yield str(OTHER).encode()[7:] + b"}]}"

    return StreamingResponse(pieces(), media_type="application/json")


async def streamed_digits(request: Request) -> Response:
    """Full-width and Arabic-Indic card numbers, cut inside their multi-byte digits, and one escaped."""
    body = orjson.dumps({**WIDE, **ARABIC})[:-1] + b', "esc": "\\uff14111111111111111"}'

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 7):
            yield body[at : at + 7]

    return StreamingResponse(pieces(), media_type="application/json")


async def gzip_stream(request: Request) -> Response:
    with_card = request.query_params.get("card") == "1"
    texts = [b'{"rows": [', b'{"memo": "' + (PAN.encode() if with_card else b"no card") + b'"}', b"]}"]

    async def pieces() -> AsyncIterator[bytes]:
        for piece in gzip_pieces(*texts):
            yield piece

    return StreamingResponse(pieces(), media_type="application/json", headers={"content-encoding": "gzip"})


SHOP = Starlette(
    routes=[
        Route("/orders/{oid}", order),
        Route("/clean", clean),
        Route("/gzipped", gzipped),
        Route("/deflated", deflated),
        Route("/brotli", brotli),
        Route("/streamed", streamed),
        Route("/gzip-stream", gzip_stream),
        Route("/streamed-digits", streamed_digits),
        Route("/payments/{pid}", order),
        Route("/digits/{kind}", other_digits),
    ]
)


def token(recipient: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": f"{recipient}-co", "recipient": recipient, "iat": now, "exp": now + 300, "aud": "shop"}
    return {"authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp: Path = tmp_path_factory.mktemp("cards")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'p.db'}",
        data_dir=tmp,
        jwt={"secret": SECRET, "algorithms": ["HS256"], "audience": "shop"},
    )
    app = PrivacyMiddleware(SHOP, runtime=Runtime(settings, policy=validate_policy(POLICY)))
    with uvicorn_in_thread(app, lifespan="on") as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def no_card(text: str) -> None:
    flat = text.replace(" ", "").replace("-", "")
    assert PAN.replace(" ", "") not in flat and str(OTHER) not in flat, text


def test_card_numbers_in_an_unplanned_json_response_are_masked(shop: httpx.Client) -> None:
    response = shop.get("/orders/o1")
    assert response.status_code == 200
    no_card(response.text)
    body = response.json()
    assert body["memo"] == "paid with " + "\u2022" * 12 + "1111"
    assert body["card"] == "\u2022" * 12 + "4444"
    assert body["order"] == "ORD-2026000000000001"  # 16 digits that are no card: untouched
    assert "etag" not in response.headers  # the body changed: its validator went with it
    assert int(response.headers["content-length"]) == len(response.content)


def test_card_numbers_in_other_decimal_digits_are_masked_too(shop: httpx.Client) -> None:
    wide = shop.get("/digits/wide").json()
    assert wide == {"memo": "paid with " + "\u2022" * 12 + "1111", "city": "Besançon"}
    assert shop.get("/digits/arabic").json() == {"card": "\u2022" * 12 + "4444"}


def test_a_response_without_card_numbers_goes_unchanged(shop: httpx.Client) -> None:
    response = shop.get("/clean")
    assert response.json() == {"order": "ORD-2026000000000001", "total": 1234}
    assert response.headers["etag"] == '"v2"'
    deflated = shop.get("/deflated")
    assert deflated.headers["content-encoding"] == "deflate" and deflated.json() == {"clean": True, "n": 12}


def test_a_gzip_response_is_decoded_to_check_and_answered_masked(shop: httpx.Client) -> None:
    with shop.stream("GET", "/gzipped") as response:
        raw = b"".join(response.iter_raw())
    assert "content-encoding" not in response.headers  # masked, then sent uncompressed
    no_card(raw.decode())
    assert orjson.loads(raw)["card"] == "\u2022" * 12 + "4444"


def test_an_encoding_that_cannot_be_checked_fails_closed(shop: httpx.Client) -> None:
    response = shop.get("/brotli")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "response_not_checkable"


def test_a_streamed_response_is_masked_in_place(shop: httpx.Client) -> None:
    response = shop.get("/streamed")
    assert response.status_code == 200
    no_card(response.text)
    rows = response.json()["rows"]  # still JSON: the bare number became a string of the same length
    assert rows[0]["memo"] == "card **** **** **** 1111 thanks"
    assert rows[1]["n"] == "**********4444"


def test_a_streamed_response_is_masked_in_any_decimal_digits(shop: httpx.Client) -> None:
    response = shop.get("/streamed-digits")
    assert response.status_code == 200
    body = response.json()  # same length, still JSON: each hidden digit became "*" of its width in bytes
    assert body["memo"] == "paid with " + " ".join(["*" * 12] * 3) + " " + in_digits("1111", 0xFF10)
    assert body["card"] == "*" * 24 + in_digits("4444", 0x0660)
    assert body["esc"] == "*" * (6 + 11) + "1111"  # the escaped digit was six bytes
    assert body["city"] == "Besançon"


def test_a_gzip_stream_goes_on_as_sent_or_is_cut_at_a_card_number(shop: httpx.Client) -> None:
    response = shop.get("/gzip-stream")
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == {"rows": [{"memo": "no card"}]}
    with shop.stream("GET", "/gzip-stream?card=1") as response:
        raw = b"".join(response.iter_raw())
    decoded = zlib.decompressobj(31).decompress(raw)
    assert b'{"rows": [' in decoded or decoded == b""
    no_card(decoded.decode())


def test_a_payment_route_keeps_card_numbers_for_its_recipient_only(shop: httpx.Client) -> None:
    response = shop.get("/payments/p1", headers=token("payment"))
    assert response.json()["card"] == OTHER and response.json()["memo"] == f"paid with {PAN}"
    for headers in ({}, token("customer")):
        response = shop.get("/payments/p1", headers=headers)
        no_card(response.text)


def test_a_payment_route_must_answer_a_recipient_granted_the_card() -> None:
    from privacy_middleware.policy.load import PolicyError

    wrong = {**POLICY, "recipients": {"payment": {"purposes": ["payment"], "sees": {"user.id": "keep"}}}}
    with pytest.raises(PolicyError, match=r"does not grant 'user\.financial\.card\.number' in full"):
        validate_policy(wrong)
    with pytest.raises(PolicyError, match="unknown purpose"):
        validate_policy({**POLICY, "cards": {"reveal": ["card_management"]}})


@pytest.mark.anyio
async def test_a_json_file_sent_by_path_cannot_be_checked(tmp_path: Path) -> None:
    """ASGI pathsend hands the file to the server: its bytes never pass the middleware, so a JSON one fails closed."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "cards.json")})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    await PrivacyMiddleware(app, runtime=runtime)(
        {"type": "http", "method": "GET", "path": "/export.json", "headers": [], "query_string": b""}, receive, send
    )
    await runtime.stop()
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 502 and orjson.loads(sent[1]["body"])["code"] == "response_not_checkable"


@pytest.mark.anyio
async def test_the_json_verdict_reads_the_start_as_any_spelling_sends_it(tmp_path: Path) -> None:
    """The verdict on a start is kept per Content-Type value: a capitalised header name (as Django sends),
    parameters, a `+json` type and an early 103 still get JSON masked, the same value twice is masked
    twice, other types go unchanged, and an upper-case coding that cannot be checked still fails closed."""
    pan = b'{"card":"4111111111111111"}'
    answers: dict[str, list[dict[str, Any]]] = {
        "/problem": [
            {"type": "http.response.start", "status": 103, "headers": [(b"Link", b"</a.css>; rel=preload")]},
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"Content-Type", b"Application/Problem+JSON; charset=UTF-8"), (b"ETag", b'"1"')],
            },
        ],
        "/text": [{"type": "http.response.start", "status": 200, "headers": [(b"Content-Type", b"text/plain")]}],
        "/empty-type": [{"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"")]}],
        "/brotli": [
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"Content-Encoding", b" BR ")],
            }
        ],
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for start in answers[scope["path"]]:
            await send(start)
        await send({"type": "http.response.body", "body": pan})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    middleware = PrivacyMiddleware(app, runtime=runtime)

    async def get(path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await middleware(
            {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}, receive, send
        )
        return sent

    try:
        for _ in range(2):
            early, start, body = await get("/problem")
            assert early["status"] == 103 and start["status"] == 200
            assert orjson.loads(body["body"]) == {"card": "\u2022" * 12 + "1111"}
            assert all(name.lower() != b"etag" for name, _ in start["headers"])
        for path in ("/text", "/empty-type"):
            start, body = await get(path)
            assert start["status"] == 200 and body["body"] == pan
        start, body = await get("/brotli")
        assert start["status"] == 502 and orjson.loads(body["body"])["code"] == "response_not_checkable"
        assert b"4111" not in body["body"]
    finally:
        await runtime.stop()
