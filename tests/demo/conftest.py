"""The demo shop behind the middleware, as a user runs it: real HTTP through httpx, real SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from privacy_middleware.demo.run import build_demo
from support.demo import Demo
from support.openapi import OpenAPIChecker


@pytest.fixture
async def demo(tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[Demo]:
    # The server's periodic retention is tested on its own; here it must not race the test.
    app, shop = build_demo(tmp_path, audit={"retention_interval_seconds": 0})
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.20", 40000)), base_url="http://shop"
        ) as client,
    ):
        # Every privacy-API response a demo test sees must match the OpenAPI description it serves.
        checker = OpenAPIChecker((await client.get("/privacy/openapi.json")).json())
        client.event_hooks["response"].append(checker.hook)
        yield Demo(app, shop, client, tmp_path)
