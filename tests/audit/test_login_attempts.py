"""Reserve-then-decide login attempts on every ledger: memory, Redis (Lua), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from privacy_middleware.audit import LoginGuard, LoginLimits, MemoryCounters
from privacy_middleware.audit.attempts import AttemptLedger, MemoryLedger
from privacy_middleware.audit.attempts_fallback import FallbackLedger
from privacy_middleware.audit.attempts_redis import RedisLedger
from privacy_middleware.audit.attempts_sql import SqlLedger
from privacy_middleware.audit.usernames import normalise_username
from privacy_middleware.store import Database
from support.ports import free_port
from support.postgres import fresh_postgres_database

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("PRIVACY_TEST_REDIS", "redis://127.0.0.1:6379/0")
KEY = b"k" * 32
Ledgers = Callable[[], AttemptLedger]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
async def ledgers(request: pytest.FixtureRequest, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Ledgers]:
    """A factory of ledgers that share their state, as four instances would."""
    async with AsyncExitStack() as stack:
        if request.param == "memory":
            shared = MemoryLedger()
            yield lambda: shared
            return
        if request.param == "redis":

            def make_redis() -> AttemptLedger:
                client = Redis.from_url(REDIS_URL)
                stack.push_async_callback(client.aclose)
                return RedisLedger(client, prefix=redis_prefix)

            yield make_redis
            return
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_database())
        migrator = Database(url)
        await migrator.upgrade()
        await migrator.dispose()

        def make_sql() -> AttemptLedger:
            db = Database(url)
            stack.push_async_callback(db.dispose)
            return SqlLedger(db)

        yield make_sql


def guards(ledgers: Ledgers, n: int, limits: LoginLimits | None = None) -> list[LoginGuard]:
    return [LoginGuard(MemoryCounters(), key=KEY, ledger=ledgers(), limits=limits) for _ in range(n)]


async def test_fifty_concurrent_attempts_on_four_instances_never_pass_the_limit(ledgers: Ledgers) -> None:
    instances = guards(ledgers, 4)
    spellings = [
        "ada@example.com",
        "ADA@example.com",
        " ada@example.com ",
        "\uff41\uff44\uff41@example.com",
        "ada\u200b@example.com",
    ]

    async def attempt(n: int) -> bool:
        return (await instances[n % 4].reserve(spellings[n % len(spellings)], "203.0.113.5")).granted

    granted = await asyncio.gather(*(attempt(n) for n in range(50)))
    assert sum(granted) == 10  # exactly the pair limit, whatever the spelling or instance
    lock = await instances[0].check("ada@example.com", "203.0.113.5")
    assert lock is not None and lock.reason == "account_ip"


async def test_an_attempt_the_shop_never_judged_is_given_back_and_a_success_resets(ledgers: Ledgers) -> None:
    [guard] = guards(ledgers, 1, LoginLimits(pair_failures=3))
    first = await guard.reserve("bob", "192.0.2.1")
    second = await guard.reserve("bob", "192.0.2.1")
    await guard.finish(first, "bob", "192.0.2.1", "failure")
    await guard.finish(second, "bob", "192.0.2.1", "void")  # a 5xx: not counted
    third = await guard.reserve("bob", "192.0.2.1")
    fourth = await guard.reserve("bob", "192.0.2.1")
    assert third.granted and fourth.granted
    assert not (await guard.reserve("bob", "192.0.2.1")).granted  # three in flight or failed
    await guard.finish(fourth, "bob", "192.0.2.1", "success")
    assert (await guard.reserve("Bob", "192.0.2.1")).granted  # the success reset the account


async def test_spraying_and_per_ip_limits_count_attempts_in_flight(ledgers: Ledgers) -> None:
    [guard] = guards(ledgers, 1, LoginLimits(spray_accounts=3, ip_failures=100))
    results = await asyncio.gather(*(guard.reserve(f"user{n}", "198.51.100.7") for n in range(8)))
    assert sum(r.granted for r in results) == 4  # more than 3 distinct accounts: the source is throttled
    lock = await guard.check("someone", "198.51.100.7")
    assert lock is not None and lock.reason == "password_spraying"
    [guard] = guards(ledgers, 1, LoginLimits(ip_failures=5, spray_accounts=1000))
    results = await asyncio.gather(*(guard.reserve("", "198.51.100.8") for _ in range(9)))
    assert sum(r.granted for r in results) == 6


async def test_an_unreachable_shared_ledger_falls_back_to_per_instance_limits() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        ledger = FallbackLedger(RedisLedger(client, prefix="pm-test-down:"), name="redis")
        guard = LoginGuard(MemoryCounters(), key=KEY, ledger=ledger)
        results = [await guard.reserve("carol", "192.0.2.9") for _ in range(12)]
        assert [r.granted for r in results] == [True] * 10 + [False] * 2
        assert all(r.backend == "local" for r in results)
        assert ledger.degraded
    finally:
        await client.aclose()


@given(st.text(max_size=20))
def test_normalisation_is_idempotent_and_ignores_case_width_and_invisible_characters(name: str) -> None:
    once = normalise_username(name)
    assert normalise_username(once) == once
    assert normalise_username(name.upper()) == normalise_username(name.lower()) or not name.isascii()
    assert normalise_username("\u200b" + name + "\ufeff ") == once
