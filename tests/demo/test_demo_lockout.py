"""Exact lockout across instances: four middleware instances in front of one shop, 50 concurrent
wrong passwords for one account spelled five ways; the shop must see no more than the limit."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from privacy_middleware.demo.run import build_demo
from privacy_middleware.demo.shop import DemoShop
from support.ports import free_port

pytestmark = pytest.mark.anyio

SPELLINGS = [
    "ada@example.com",
    "ADA@Example.com",
    "  ada@example.com ",
    "\uff41da@example.com",
    "ada\u200d@example.com",
]


class CountingShop:
    """The demo shop, counting the login attempts that reach it (each takes a little while)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.logins = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/auth/login":
            self.logins += 1
            await asyncio.sleep(0.05)  # attempts overlap, as they do against a real password hash
        await self.app(scope, receive, send)


async def race(tmp_path: Path, asgi_lifespan: Any, **shared: Any) -> tuple[CountingShop, list[int]]:
    shop = DemoShop(tmp_path / "shop")
    counting = CountingShop(shop.app)
    shop.app = counting  # type: ignore[assignment]
    settings = {"pseudonym_secret": "p" * 32, "audit": {"login_guard_key": "g" * 32}, **shared}
    apps = [build_demo(tmp_path / f"i{n}", shop=shop, **settings)[0] for n in range(4)]
    async with AsyncExitStack() as stack:
        clients = []
        for app in apps:
            await stack.enter_async_context(asgi_lifespan(app))
            transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 40000))
            clients.append(await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://s")))

        async def attempt(n: int) -> int:
            body = {"email": SPELLINGS[n % len(SPELLINGS)], "password": "wrong password"}
            return (await clients[n % 4].post("/auth/login", json=body)).status_code

        statuses = await asyncio.gather(*(attempt(n) for n in range(50)))
    return counting, statuses


@pytest.mark.redis
@pytest.mark.postgres
async def test_fifty_concurrent_guesses_on_four_instances_with_redis_reach_the_shop_ten_times(
    tmp_path: Path, postgres_url: str, redis_prefix: str, asgi_lifespan: Any
) -> None:
    shop, statuses = await race(
        tmp_path,
        asgi_lifespan,
        database_url=postgres_url,
        redis_url="redis://127.0.0.1:6379/0",
        redis_prefix=redis_prefix,
    )
    assert shop.logins == 10
    assert sorted(set(statuses)) == [401, 429] and statuses.count(401) == 10


@pytest.mark.postgres
async def test_without_redis_the_store_keeps_the_lockout_exact(
    tmp_path: Path, postgres_url: str, asgi_lifespan: Any
) -> None:
    shop, statuses = await race(tmp_path, asgi_lifespan, database_url=postgres_url)
    assert shop.logins == 10
    assert statuses.count(401) == 10 and statuses.count(429) == 40


async def test_redis_down_logins_keep_working_on_per_instance_limits(tmp_path: Path, asgi_lifespan: Any) -> None:
    app, _ = build_demo(
        tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0", audit={"retention_interval_seconds": 0}
    )
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 40000))
    async with asgi_lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        body = {"email": "ada@example.com", "password": "correct horse battery", "birth_date": "1990-01-01"}
        assert (await client.post("/auth/register", json=body)).status_code == 201
        assert (await client.post("/auth/login", json=body)).status_code == 200
        wrong = {"email": "ada@example.com", "password": "wrong"}
        statuses = [(await client.post("/auth/login", json=wrong)).status_code for _ in range(11)]
        assert statuses == [401] * 10 + [429]
        metrics = (await client.get("/metrics")).text
        assert "privacy_login_counters_degraded 1.0" in metrics
        assert 'privacy_login_counter_fallbacks_total{backend="redis"}' in metrics
