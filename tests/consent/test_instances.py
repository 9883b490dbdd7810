"""Two instances share the real PostgreSQL and Redis: a change on one holds on the other at once."""

import time
from collections.abc import Callable

import anyio
import pytest

from privacy_middleware.consent import ConsentService, Holder
from privacy_middleware.store import Database
from privacy_middleware.store.bus import RedisBus

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]
REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_withdrawal_on_one_instance_is_effective_on_the_other_within_a_second(
    postgres_url: str, redis_prefix: str, make_service: Callable[..., ConsentService]
) -> None:
    db_one, db_two = Database(postgres_url), Database(postgres_url)
    await db_one.upgrade()
    bus_one = RedisBus(REDIS_URL, prefix=redis_prefix)
    bus_two = RedisBus(REDIS_URL, prefix=redis_prefix)
    # A long TTL: only the bus can make the second instance see the change in time.
    one = make_service(db_one, bus=bus_one, cache_ttl=3600)
    two = make_service(db_two, bus=bus_two, cache_ttl=3600)
    await bus_one.start()
    await bus_two.start()
    try:
        ivan = Holder.subject("ivan")
        await one.set_purposes(ivan, {"analytics": True, "marketing": True})
        with anyio.fail_after(1.0):
            while not (await two.decide(subject="ivan")).allowed("marketing"):
                await anyio.sleep(0.01)

        started = time.monotonic()
        await one.withdraw(ivan)
        with anyio.fail_after(1.0):
            while (await two.decide(subject="ivan")).allowed("marketing"):
                await anyio.sleep(0.01)
        assert time.monotonic() - started < 1.0
        decision = await two.decide(subject="ivan")
        assert decision.reason("analytics") == "explicit_denied"
        assert [r.method for r in await two.history(ivan)] == ["api", "withdrawal"]
    finally:
        await bus_one.close()
        await bus_two.close()
        await db_one.dispose()
        await db_two.dispose()


async def test_a_restart_of_the_bus_reader_does_not_lose_later_changes(
    postgres_url: str, redis_prefix: str, make_service: Callable[..., ConsentService]
) -> None:
    db = Database(postgres_url)
    await db.upgrade()
    bus_one, bus_two = RedisBus(REDIS_URL, prefix=redis_prefix), RedisBus(REDIS_URL, prefix=redis_prefix)
    one = make_service(db, bus=bus_one, cache_ttl=3600)
    two = make_service(db, bus=bus_two, cache_ttl=3600)
    await bus_one.start()
    await bus_two.start()
    try:
        judy = Holder.subject("judy")
        await one.set_purposes(judy, {"analytics": True})
        assert (await two.decide(subject="judy")).allowed("analytics")
        await bus_two.close()
        await bus_two.start()
        await one.set_purposes(judy, {"analytics": False})
        with anyio.fail_after(1.0):
            while (await two.decide(subject="judy")).allowed("analytics"):
                await anyio.sleep(0.01)
    finally:
        await bus_one.close()
        await bus_two.close()
        await db.dispose()
