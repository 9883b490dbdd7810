import asyncio

import pytest

from privacy_middleware.crypto.cache import SingleFlightCache

pytestmark = pytest.mark.anyio


async def test_concurrent_misses_make_exactly_one_load() -> None:
    cache: SingleFlightCache[str, bytes] = SingleFlightCache(maxsize=10, ttl=60)
    calls = 0
    release = asyncio.Event()

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        return b"key"

    waiters = [asyncio.create_task(cache.get("k", load)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [b"key"] * 50
    assert calls == 1


async def test_failed_load_is_shared_then_retried() -> None:
    cache: SingleFlightCache[str, bytes] = SingleFlightCache(maxsize=10, ttl=60)
    calls = 0
    release = asyncio.Event()

    async def failing() -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        raise RuntimeError("down")

    waiters = [asyncio.create_task(cache.get("k", failing)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)

    async def working() -> bytes:
        return b"ok"

    assert await cache.get("k", working) == b"ok"


async def test_entries_expire_after_ttl_and_size_is_bounded() -> None:
    now = [0.0]
    cache: SingleFlightCache[int, int] = SingleFlightCache(maxsize=3, ttl=10, timer=lambda: now[0])
    loads: list[int] = []

    def loader(n: int):  # type: ignore[no-untyped-def]
        async def load() -> int:
            loads.append(n)
            return n

        return load

    for n in range(5):
        await cache.get(n, loader(n))
    assert len(cache) == 3
    await cache.get(4, loader(4))
    assert loads == [0, 1, 2, 3, 4]
    now[0] = 11.0
    await cache.get(4, loader(4))
    assert loads[-1] == 4 and len(loads) == 6


async def test_a_cancelled_loader_does_not_strand_waiters() -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(maxsize=10, ttl=60)
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(10)
        return "slow"

    async def fast() -> str:
        return "fast"

    first = asyncio.create_task(cache.get("k", slow))
    await started.wait()
    second = asyncio.create_task(cache.get("k", fast))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "fast"
    with pytest.raises(asyncio.CancelledError):
        await first
