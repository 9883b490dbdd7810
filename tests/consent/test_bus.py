import anyio
import pytest
from redis.exceptions import RedisError

from privacy_middleware.store.bus import LocalBus, RedisBus

pytestmark = pytest.mark.anyio
REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_local_bus_delivers_to_every_handler_of_the_topic_only() -> None:
    bus = LocalBus()
    got: list[tuple[str, str]] = []

    async def first(payload: str) -> None:
        got.append(("first", payload))

    async def broken(payload: str) -> None:
        raise RuntimeError("subscriber bug")

    async def second(payload: str) -> None:
        got.append(("second", payload))

    bus.subscribe("consent.changed", first)
    bus.subscribe("consent.changed", broken)
    bus.subscribe("consent.changed", second)
    bus.subscribe("restriction.changed", first)
    await bus.start()
    await bus.publish("consent.changed", "k1")
    await bus.close()
    assert got == [("first", "k1"), ("second", "k1")]


async def _wait_for(condition: object, timeout: float = 3.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.01)


@pytest.mark.redis
async def test_redis_bus_carries_messages_between_instances(redis_prefix: str) -> None:
    got_a: list[str] = []
    got_b: list[str] = []
    a, b = RedisBus(REDIS_URL, prefix=redis_prefix), RedisBus(REDIS_URL, prefix=redis_prefix)

    async def on_a(payload: str) -> None:
        got_a.append(payload)

    async def on_b(payload: str) -> None:
        got_b.append(payload)

    a.subscribe("consent.changed", on_a)
    b.subscribe("consent.changed", on_b)
    await a.start()
    await b.start()
    try:
        await a.publish("consent.changed", "key-1")
        await a.publish("other.topic", "ignored")
        await _wait_for(lambda: got_b == ["key-1"] and got_a == ["key-1"])
    finally:
        await a.close()
        await b.close()


@pytest.mark.redis
async def test_redis_bus_channels_are_namespaced_by_prefix(redis_prefix: str) -> None:
    got: list[str] = []
    mine = RedisBus(REDIS_URL, prefix=redis_prefix)
    other = RedisBus(REDIS_URL, prefix=redis_prefix + "other:")

    async def handler(payload: str) -> None:
        got.append(payload)

    mine.subscribe("t", handler)
    await mine.start()
    await other.start()
    try:
        await other.publish("t", "not-for-me")
        await mine.publish("t", "for-me")
        await _wait_for(lambda: got == ["for-me"])
        await anyio.sleep(0.1)
        assert got == ["for-me"]
    finally:
        await mine.close()
        await other.close()


async def test_redis_bus_survives_an_unreachable_server_and_closes_cleanly() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0", prefix="pm-test-unreachable:")

    async def handler(payload: str) -> None:
        raise AssertionError("no message can arrive")

    bus.subscribe("t", handler)
    await bus.start()
    with pytest.raises(RedisError):
        await bus.publish("t", "lost")
    await anyio.sleep(0.3)  # the reader retries in the background without raising
    await bus.close()
