"""Request-body buffering with a cap, and replay that then hands back to the real `receive`."""

from __future__ import annotations

from ..errors import PrivacyError
from ..types import Message, Receive
from .headers import get_header


class ClientDisconnected(Exception):
    """The client went away while its body was being read."""


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    value = get_header(headers, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise PrivacyError("bad_content_length", "Content-Length is not a number.", 400) from None


def too_large(limit: int) -> PrivacyError:
    return PrivacyError(
        "body_too_large", f"The request body is larger than the {limit}-byte limit for this route.", 413
    )


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read the whole body; refuse (413) as soon as it passes `limit`, before buffering more."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
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
