"""Request-body buffering with a cap, and replay that then hands back to the real `receive`."""

from __future__ import annotations

import zlib

from ..errors import PrivacyError
from ..types import Message, Receive
from .headers import get_header


class ClientDisconnected(Exception):
    """The client went away while its body was being read."""


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    value = get_header(headers, b"content-length")
    return None if value is None else parse_length(value)


def parse_length(value: bytes) -> int:
    """A Content-Length value; 400 when it is not a number."""
    try:
        return int(value)
    except ValueError:
        raise PrivacyError("bad_content_length", "Content-Length is not a number.", 400) from None


def too_large(limit: int) -> PrivacyError:
    return PrivacyError(
        "body_too_large", f"The request body is larger than the {limit}-byte limit for this route.", 413
    )


async def read_body(receive: Receive, limit: int, first: Message | None = None) -> bytes:
    """Read the whole body; refuse (413) as soon as it passes `limit`, before buffering more.
    `first` is a message the caller already received (see `whole_body`)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = first if first is not None else await receive()
        first = None
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def whole_body(message: Message, limit: int) -> bytes | None:
    """The body when `message` holds all of it (what a server sends for a small body), else None
    (read on with `read_body(receive, limit, message)`); 413 past `limit`, as `read_body`."""
    if message["type"] != "http.request" or message.get("more_body", False):
        return None
    body = message.get("body", b"")
    if len(body) > limit:
        raise too_large(limit)
    return bytes(body) if type(body) is not bytes else body


def replay(body: bytes, receive: Receive) -> Receive:
    """Give the app the (possibly rewritten) body once, then delegate to the real receive.

    Never invents a disconnect: Django and Starlette treat an early `http.disconnect` as an abort.
    """
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def unsupported_encoding() -> PrivacyError:
    return PrivacyError(
        "unsupported_content_encoding",
        "This request body must be inspected; send it uncompressed, gzip or deflate.",
        415,
    )


def _inflate(data: bytes, wbits: int, limit: int, members: bool = False) -> bytes:
    """Decompress at most `limit` bytes (a bomb stops there). Gzip may hold several members, which
    decoders read one after another, so each is decoded; other trailing bytes are an error."""
    out = b""
    while True:
        inflater = zlib.decompressobj(wbits)
        out += inflater.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            raise too_large(limit)
        if not inflater.eof or inflater.unconsumed_tail:
            raise zlib.error("truncated data")
        data = inflater.unused_data
        if not data:
            return out
        if not members:
            raise zlib.error("trailing data")


def decoded_for_inspection(body: bytes, encoding: bytes, limit: int) -> bytes:
    """The body under its `Content-Encoding` (gzip, deflate, in the order applied), to be checked,
    not forwarded: the app still receives the bytes the client sent. The decoded size is capped at
    `limit` (a small compressed body cannot expand past it); an encoding that cannot be decoded here
    is refused (415) rather than passed unchecked."""
    codings = [c.strip().lower() for c in encoding.split(b",") if c.strip() and c.strip().lower() != b"identity"]
    try:
        for coding in reversed(codings):
            if coding in (b"gzip", b"x-gzip"):
                body = _inflate(body, 16 + zlib.MAX_WBITS, limit, members=True)
            elif coding == b"deflate":  # RFC 9110 says zlib-wrapped; some clients send raw deflate
                try:
                    body = _inflate(body, zlib.MAX_WBITS, limit)
                except zlib.error:
                    body = _inflate(body, -zlib.MAX_WBITS, limit)
            else:
                raise unsupported_encoding()
    except zlib.error:
        raise PrivacyError(
            "malformed_body", "The request body does not decode under its Content-Encoding.", 400
        ) from None
    return body
