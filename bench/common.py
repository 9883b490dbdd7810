"""Shared timing helpers: call ASGI apps directly (no HTTP client in the loop) and compare."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any


def minimal_app_factory(response_body: bytes = b'{"ok":true}') -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(response_body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": response_body})

    return app


def call(
    app: Any, method: str, path: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> Callable[[], Awaitable[None]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": headers or [],
    }

    async def once() -> None:
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            pass

        await app(dict(scope), receive, send)

    return once


async def measure(fn: Callable[[], Awaitable[None]], iterations: int, repeats: int = 7) -> float:
    """Median seconds per call over several repeats, after a warm-up."""
    for _ in range(min(iterations, 500)):
        await fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(iterations):
            await fn()
            if i % 16 == 15:
                # Let background tasks (the audit writer) run, as real network I/O would.
                await asyncio.sleep(0)
        samples.append((time.perf_counter() - start) / iterations)
    return statistics.median(samples)


def report(name: str, seconds: float, baseline: float, baseline_name: str) -> None:
    print(f"{name:<52} {seconds * 1e6:9.2f} µs   {seconds / baseline:6.3f}x {baseline_name}")
