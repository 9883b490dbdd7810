"""Reading what an ASGI app is sent, as a test's stand-in shop does."""

from __future__ import annotations

from typing import Any


async def request_body(receive: Any) -> bytes:
    """The whole request body, however many `http.request` messages carry it."""
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)
