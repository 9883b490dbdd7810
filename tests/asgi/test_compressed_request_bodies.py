"""Compressed request bodies on routes without a plan: the card sentinel checks them decoded (gzip,
every member; deflate, zlib-wrapped or raw) and forwards the bytes as sent; an encoding it cannot
decode is refused, and a small body that expands past the size cap is refused before it expands."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from support import shops
from support.fail_closed import Recorder, Records

pytestmark = pytest.mark.anyio
CARD_BODY = orjson.dumps({"note": "card 4111 1111 1111 1111"})
PLAIN_BODY = orjson.dumps({"note": "ring the bell twice"})


async def notes(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


@pytest.fixture
async def client(tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Records]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": shops.JWT_SECRET, "algorithms": ["HS256"]},
        max_body_bytes=64 * 1024,
    )
    records = Records()  # every body the shop's handler reads
    shop = Recorder(Starlette(routes=[Route("/notes", notes, methods=["POST"])]), records)
    app = PrivacyMiddleware(shop, runtime=Runtime(settings, policy=shops.policy()))
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as http,
    ):
        yield http, records


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


ENCODED = {
    "gzip": lambda b: gzip.compress(b),
    "x-gzip": lambda b: gzip.compress(b),
    "deflate": zlib.compress,
    "deflate-raw": raw_deflate,
}


async def post(http: httpx.AsyncClient, body: bytes, encoding: str) -> httpx.Response:
    headers = {"content-type": "application/json", "content-encoding": encoding}
    return await http.post("/notes", content=body, headers=headers)


@pytest.mark.parametrize("name", sorted(ENCODED))
async def test_a_compressed_card_number_is_refused(client: Any, name: str) -> None:
    http, records = client
    response = await post(http, ENCODED[name](CARD_BODY), name.removesuffix("-raw"))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "card_data_on_unprotected_route" and "4111" not in response.text
    assert records.bodies == []


async def test_a_card_in_a_later_gzip_member_is_refused(client: Any) -> None:
    http, records = client
    body = gzip.compress(b'{"note": "hello ') + gzip.compress(CARD_BODY[len(b'{"note": "') :])
    assert gzip.decompress(body) == b'{"note": "hello ' + CARD_BODY[len(b'{"note": "') :]
    response = await post(http, body, "gzip")
    assert response.status_code == 422 and records.bodies == []


async def test_layered_encodings_are_decoded_in_reverse_order(client: Any) -> None:
    http, records = client
    response = await post(http, gzip.compress(zlib.compress(CARD_BODY)), "deflate, gzip")
    assert response.status_code == 422 and records.bodies == []


@pytest.mark.parametrize("name", sorted(ENCODED))
async def test_a_compressed_body_without_card_data_is_forwarded_as_sent(client: Any, name: str) -> None:
    http, records = client
    sent = ENCODED[name](PLAIN_BODY)
    response = await post(http, sent, name.removesuffix("-raw"))
    assert response.status_code == 204, response.text
    assert records.bodies == [sent]


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
async def test_an_encoding_that_cannot_be_checked_is_refused(client: Any, encoding: str) -> None:
    http, records = client
    response = await post(http, b"\x00\x01opaque", encoding)
    assert response.status_code == 415 and response.json()["code"] == "unsupported_content_encoding"
    assert records.bodies == []


async def test_a_body_that_expands_past_the_cap_is_refused(client: Any) -> None:
    http, records = client
    bomb = gzip.compress(b'{"note": "' + b"0" * (10 * 1024 * 1024) + b'"}')
    assert len(bomb) < 64 * 1024
    response = await post(http, bomb, "gzip")
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"
    assert records.bodies == []


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(CARD_BODY)[:-12], gzip.compress(PLAIN_BODY) + b"x"])
async def test_a_body_that_does_not_decode_is_refused(client: Any, body: bytes) -> None:
    http, records = client
    response = await post(http, body, "gzip")
    assert response.status_code == 400 and response.json()["code"] == "malformed_body"
    assert records.bodies == []
