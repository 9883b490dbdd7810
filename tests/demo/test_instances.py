"""Two middleware instances in front of one shop, sharing the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from privacy_middleware.demo.run import build_demo
from privacy_middleware.demo.shop import DemoShop

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]

CSRF = {"x-privacy-consent": "1"}


async def test_withdrawal_on_one_instance_is_effective_on_the_other_within_a_second(
    tmp_path: Path, postgres_url: str, redis_prefix: str, asgi_lifespan: Any
) -> None:
    shop = DemoShop(tmp_path / "shop")
    shared = {
        "database_url": postgres_url,
        "redis_url": "redis://127.0.0.1:6379/0",
        "redis_prefix": redis_prefix,
        "pseudonym_secret": "p" * 32,
        "consent": {"secure_cookie": False, "cookie_secret": "c" * 32, "cache_seconds": 60},
    }
    first, _ = build_demo(tmp_path / "a", shop=shop, **shared)
    second, _ = build_demo(tmp_path / "b", shop=shop, **shared)
    async with AsyncExitStack() as stack:
        clients = []
        for app in (first, second):
            await stack.enter_async_context(asgi_lifespan(app))
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop")
                )
            )
        a, b = clients
        registered = await a.post(
            "/auth/register",
            json={
                "email": "ada@example.com",
                "password": "correct horse battery",
                "birth_date": "1990-01-01",
            },
        )
        auth = {"authorization": f"Bearer {registered.json()['token']}"}
        assert (
            await a.put("/privacy/consent", json={"purposes": {"analytics": True}}, headers={**CSRF, **auth})
        ).status_code == 200
        # Instance B now has the subject's state cached for a minute.
        assert (await b.post("/track", json={"event": "view"}, headers=auth)).status_code == 202
        assert (await a.delete("/privacy/consent", headers={**CSRF, **auth})).status_code == 200
        withdrawn_at = time.monotonic()
        while True:
            status = (await b.post("/track", json={"event": "view"}, headers=auth)).status_code
            if status == 204:
                break
            assert time.monotonic() - withdrawn_at < 1.0, "instance B still tracks a second after withdrawal"
            await asyncio.sleep(0.02)
