"""Expiring counters for login throttling: in memory (one instance) or Redis (shared).

Keys arrive already pseudonymised by the guard, so neither backend ever holds a raw
username or IP address.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis


class CounterBackend(Protocol):
    async def incr(self, key: str, ttl: float, *, refresh: bool) -> int:
        """Add one; the key expires `ttl` seconds after creation (or after this call if refresh)."""
        ...

    async def count(self, key: str) -> tuple[int, float]:
        """Current value and seconds until it expires ((0, 0.0) when absent)."""
        ...

    async def lock(self, key: str, ttl: float) -> None: ...

    async def add_distinct(self, key: str, member: str, ttl: float) -> int:
        """Add to a set that expires `ttl` after creation; returns the set size."""
        ...

    async def distinct(self, key: str) -> tuple[int, float]: ...

    async def remember(self, key: str, member: str, keep: int, ttl: float) -> tuple[bool, int]:
        """Record `member` in a recency list of `keep` entries forgotten after `ttl`.

        Returns (was it already there, how many entries there were before).
        """
        ...

    async def delete(self, *keys: str) -> None: ...


class MemoryCounters:
    """Single-instance counters. `clock` is injectable so tests can move time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = 100_000) -> None:
        self._clock = self.clock = clock
        self._max_keys = max_keys
        self._values: dict[str, tuple[int, float]] = {}
        self._sets: dict[str, tuple[set[str], float]] = {}
        self._recent: dict[str, dict[str, float]] = {}

    def _sweep(self) -> None:
        if len(self._values) + len(self._sets) + len(self._recent) < self._max_keys:
            return
        now = self._clock()
        self._values = {k: v for k, v in self._values.items() if v[1] > now}
        self._sets = {k: v for k, v in self._sets.items() if v[1] > now}
        self._recent = {k: v for k, v in self._recent.items() if v and max(v.values()) > now}

    async def incr(self, key: str, ttl: float, *, refresh: bool) -> int:
        self._sweep()
        now = self._clock()
        value, expires = self._values.get(key, (0, 0.0))
        if expires <= now:
            value, expires = 0, now + ttl
        value += 1
        self._values[key] = (value, now + ttl if refresh else expires)
        return value

    async def count(self, key: str) -> tuple[int, float]:
        now = self._clock()
        value, expires = self._values.get(key, (0, 0.0))
        if expires <= now:
            return 0, 0.0
        return value, expires - now

    async def lock(self, key: str, ttl: float) -> None:
        self._values[key] = (1, self._clock() + ttl)

    async def add_distinct(self, key: str, member: str, ttl: float) -> int:
        self._sweep()
        now = self._clock()
        members, expires = self._sets.get(key, (set(), 0.0))
        if expires <= now:
            members, expires = set(), now + ttl
        members.add(member)
        self._sets[key] = (members, expires)
        return len(members)

    async def distinct(self, key: str) -> tuple[int, float]:
        now = self._clock()
        members, expires = self._sets.get(key, (set(), 0.0))
        if expires <= now:
            return 0, 0.0
        return len(members), expires - now

    async def remember(self, key: str, member: str, keep: int, ttl: float) -> tuple[bool, int]:
        self._sweep()
        now = self._clock()
        entries = {m: t for m, t in self._recent.get(key, {}).items() if t > now}
        seen, before = member in entries, len(entries)
        entries.pop(member, None)
        entries[member] = now + ttl
        while len(entries) > keep:
            entries.pop(next(iter(entries)))
        self._recent[key] = entries
        return seen, before

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._values.pop(key, None)
            self._sets.pop(key, None)
            self._recent.pop(key, None)


_INCR = """
local c = redis.call('INCR', KEYS[1])
if ARGV[2] == '1' or c == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return c
"""

_ADD_DISTINCT = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('SCARD', KEYS[1])
"""

_REMEMBER = """
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PEXPIRE', KEYS[1], ttl)
if seen then return {1, before} end
return {0, before}
"""


class RedisCounters:
    """Counters shared by every instance through Redis (atomic Lua scripts)."""

    def __init__(self, client: Redis, *, prefix: str = "privacy:login:") -> None:
        self._redis = self.client = client
        self._prefix = self.prefix = prefix
        self._incr = client.register_script(_INCR)
        self._add = client.register_script(_ADD_DISTINCT)
        self._remember = client.register_script(_REMEMBER)

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def incr(self, key: str, ttl: float, *, refresh: bool) -> int:
        return int(await self._incr(keys=[self._k(key)], args=[_ms(ttl), "1" if refresh else "0"]))

    async def count(self, key: str) -> tuple[int, float]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._k(key))
            pipe.pttl(self._k(key))
            value, pttl = await pipe.execute()
        if value is None or pttl is None or int(pttl) <= 0:
            return 0, 0.0
        return int(value), int(pttl) / 1000

    async def lock(self, key: str, ttl: float) -> None:
        await self._redis.set(self._k(key), 1, px=_ms(ttl))

    async def add_distinct(self, key: str, member: str, ttl: float) -> int:
        return int(await self._add(keys=[self._k(key)], args=[member, _ms(ttl)]))

    async def distinct(self, key: str) -> tuple[int, float]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.scard(self._k(key))
            pipe.pttl(self._k(key))
            size, pttl = await pipe.execute()
        if not size or int(pttl) <= 0:
            return 0, 0.0
        return int(size), int(pttl) / 1000

    async def remember(self, key: str, member: str, keep: int, ttl: float) -> tuple[bool, int]:
        now = time.time_ns() // 1_000_000
        seen, before = await self._remember(keys=[self._k(key)], args=[member, keep, now, _ms(ttl)])
        return bool(int(seen)), int(before)

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._redis.delete(*(self._k(k) for k in keys))


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
