"""The proxy's aiohttp upstream client against real servers on loopback: exactly the request the httpx
path sends (hop-by-hop removed, forwarding added, nothing of the client's own), and the same answers
when the upstream is slow, breaks off mid-body, or the client leaves during an upload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest

from privacy_middleware.asgi.proxy import ProxyApp, UpstreamAborted

pytestmark = pytest.mark.anyio


class RawServer:
    """An asyncio TCP server on loopback that records what it received and answers with `reply`."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.received = b""
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.reply(self, reader, writer)
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


async def running(reply: Any) -> AsyncIterator[RawServer]:
    raw = RawServer(reply)
    raw.server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    try:
        yield raw
    finally:
        raw.server.close()


async def read_request(raw: RawServer, reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    raw.received = head
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            raw.received += await reader.readexactly(int(line.split(b":")[1]))


async def ok(raw: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(raw, reader)
    writer.write(b'HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}')
    await writer.drain()


async def call(proxy: ProxyApp, method: str, path: str, headers: list[tuple[bytes, bytes]], body: list[Any]) -> Any:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if body:
            return body.pop(0)  # type: ignore[no-any-return]
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path_only, _, query = path.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "scheme": "http",
        "path": unquote(path_only),
        "raw_path": path_only.encode(),
        "query_string": query.encode(),
        "headers": headers,
        "client": ("203.0.113.9", 50000),
    }
    await proxy(scope, receive, send)
    return sent


async def test_the_request_on_the_wire_is_the_proxys_exactly() -> None:
    async for raw in running(ok):
        proxy = ProxyApp(raw.url + "/api/", client_engine="aiohttp")
        try:
            sent = await call(
                proxy,
                "POST",
                "/items/a%20b?q=1&x=%20",
                [
                    (b"host", b"shop.example"),
                    (b"connection", b"keep-alive, X-Private-Hop"),
                    (b"x-private-hop", b"secret"),
                    (b"keep-alive", b"timeout=5"),
                    (b"te", b"trailers"),
                    (b"proxy-authorization", b"Basic Zm9vOmJhcg=="),
                    (b"expect", b"100-continue"),
                    (b"x-http-method-override", b"GET"),
                    (b"x-forwarded-for", b"198.51.100.7"),
                    (b"authorization", b"Bearer abc"),
                    (b"cookie", b"session=u1"),
                    (b"accept-encoding", b"gzip"),
                    (b"content-type", b"application/json"),
                    (b"content-length", b"12"),
                ],
                [
                    {"type": "http.request", "body": b'{"a":', "more_body": True},
                    {"type": "http.request", "body": b'"bcde"}', "more_body": False},
                ],
            )
        finally:
            await proxy.aclose()
        assert sent[0]["status"] == 201 and sent[1]["body"] == b'{"ok":true}'
        head, _, body = raw.received.partition(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        assert request_line == "POST /api/items/a%20b?q=1&x=%20 HTTP/1.1"
        headers = [tuple(line.split(": ", 1)) for line in lines]
        names = [name.lower() for name, _ in headers]
        for absent in ("connection", "x-private-hop", "keep-alive", "te", "proxy-authorization", "expect"):
            assert absent not in names
        for absent in ("x-http-method-override", "transfer-encoding", "user-agent", "accept"):
            assert absent not in names
        values = {name.lower(): value for name, value in headers}
        assert names.count("host") == 1 and values["host"] == raw.url.removeprefix("http://")
        assert values["x-forwarded-host"] == "shop.example"
        assert values["x-forwarded-for"] == "198.51.100.7, 203.0.113.9"
        assert values["forwarded"] == "for=203.0.113.9;proto=http;host=shop.example"
        assert values["authorization"] == "Bearer abc" and values["cookie"] == "session=u1"
        assert names.count("accept-encoding") == 1 and values["accept-encoding"] == "identity"
        assert values["content-length"] == "12" and values["content-type"] == "application/json"
        assert body == b'{"a":"bcde"}'


async def test_a_slow_upstream_is_504_and_a_refused_one_502() -> None:
    async def slow(raw: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(raw, reader)
        await asyncio.sleep(5)

    async for raw in running(slow):
        proxy = ProxyApp(raw.url, client_engine="aiohttp", timeout=httpx.Timeout(0.5))
        try:
            sent = await call(proxy, "GET", "/orders?token=secret-value", [], [])
        finally:
            await proxy.aclose()
        assert sent[0]["status"] == 504
        assert orjson.loads(sent[1]["body"])["code"] == "upstream_timeout"
        assert b"secret-value" not in sent[1]["body"]
    async for raw in running(ok):
        dead = raw.url
    proxy = ProxyApp(dead, client_engine="aiohttp")
    try:
        sent = await call(proxy, "GET", "/orders", [], [])
    finally:
        await proxy.aclose()
    assert sent[0]["status"] == 502
    assert orjson.loads(sent[1]["body"])["code"] == "upstream_unavailable"


async def test_an_answer_broken_off_mid_body_aborts_instead_of_ending_cleanly() -> None:
    async def broken(raw: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(raw, reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100\r\n\r\nfirst part"
        )
        await writer.drain()

    async for raw in running(broken):
        proxy = ProxyApp(raw.url, client_engine="aiohttp")
        sent: list[dict[str, Any]] = []
        try:
            with pytest.raises(UpstreamAborted):
                sent.extend(await call(proxy, "GET", "/file", [], []))
        finally:
            await proxy.aclose()


async def test_a_client_leaving_during_an_upload_stops_quietly() -> None:
    async def waiting(raw: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw.received = await reader.read(65536)
        await asyncio.sleep(2)

    async for raw in running(waiting):
        proxy = ProxyApp(raw.url, client_engine="aiohttp")
        try:
            sent = await call(
                proxy,
                "POST",
                "/upload",
                [(b"content-length", b"100")],
                [{"type": "http.request", "body": b"part", "more_body": True}, {"type": "http.disconnect"}],
            )
        finally:
            await proxy.aclose()
        assert sent == []


def test_an_unknown_engine_or_a_shared_httpx_client_with_aiohttp_is_refused() -> None:
    with pytest.raises(ValueError):
        ProxyApp("http://shop.internal", client_engine="curl")
    with pytest.raises(ValueError):
        ProxyApp("http://shop.internal", client=httpx.AsyncClient(), client_engine="aiohttp")
