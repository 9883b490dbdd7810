"""The demo shop behind the middleware, driven like a browser: forms, cookies, redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from privacy_middleware.demo.run import build_demo
from support.demo import Demo


@pytest.fixture
async def demo(tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[Demo]:
    app, shop = build_demo(tmp_path, audit={"retention_interval_seconds": 0})
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.20", 40000)), base_url="http://shop"
        ) as client,
    ):
        yield Demo(app, shop, client, tmp_path)
