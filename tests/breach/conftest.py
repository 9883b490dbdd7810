"""Fixtures for breach tests: the demo behind the middleware with a [breach] policy section, a real
loopback webhook receiver (uvicorn on a free port) and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from privacy_middleware.demo.run import build_demo, demo_policy_path
from support.demo import Demo
from support.servers import uvicorn_in_thread

WEBHOOK_SECRET = "breach-webhook-secret-0123456789"


@dataclass
class Receiver:
    """A loopback HTTP server that records every POST it receives."""

    url: str = ""
    deliveries: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with self.arrived:
            self.deliveries.append((headers, body, time.monotonic()))
            self.arrived.notify_all()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def wait_for(self, predicate: Any, timeout: float) -> list[tuple[dict[str, str], bytes, float]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = [d for d in self.deliveries if predicate(d)]
                if found or time.monotonic() >= deadline:
                    return found
                self.arrived.wait(deadline - time.monotonic())


def serve_in_thread(app: Any) -> AbstractContextManager[str]:
    return uvicorn_in_thread(app, lifespan="on")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    with serve_in_thread(hook) as url:
        hook.url = url + "/hooks/privacy"
        yield hook


def policy_with(tmp_path: Path, breach: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(demo_policy_path().read_text() + "\n[breach]\n" + breach + "\n")
    return path


@contextmanager
def no_op() -> Iterator[None]:
    yield


async def open_demo(tmp_path: Path, asgi_lifespan: Any, breach_policy: str, **settings: Any) -> AsyncIterator[Demo]:
    app, shop = build_demo(
        tmp_path,
        policy_file=policy_with(tmp_path, breach_policy),
        audit={"retention_interval_seconds": 0, "checkpoint_seconds": 0.5},
        **settings,
    )
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.20", 40000)), base_url="http://shop"
        ) as client,
    ):
        yield Demo(app, shop, client, tmp_path)
