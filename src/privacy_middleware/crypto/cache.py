"""A bounded TTL cache of unwrapped keys whose concurrent misses share one load (single-flight).

Without coalescing, N requests arriving on a cold cache make N calls to the key service
(aws-encryption-sdk-javascript #1665); here the first miss loads and the others await it.
A failed load is not cached: the next caller tries again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlightCache(Generic[K, V]):
    def __init__(self, *, maxsize: int, ttl: float, timer: Callable[[], float] | None = None) -> None:
        if maxsize < 1 or ttl <= 0:
            raise ValueError("a key cache needs a positive size and time-to-live")
        self._entries: TTLCache[K, V] = (
            TTLCache(maxsize=maxsize, ttl=ttl, timer=timer) if timer else TTLCache(maxsize=maxsize, ttl=ttl)
        )
        self._inflight: dict[K, asyncio.Future[V]] = {}

    def peek(self, key: K) -> V | None:
        """The live entry, or None (expired or absent). `TTLCache.__getitem__` checks the expiry as
        `get` does, in three Python calls instead of about seven (a request peeks its subject's key)."""
        try:
            return self._entries[key]
        except KeyError:
            return None

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        while True:
            value = self._entries.get(key)
            if value is not None:
                return value
            pending = self._inflight.get(key)
            if pending is None:
                return await self._load(key, load)
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and (task is None or not task.cancelling()):
                    continue  # the loading caller was cancelled, not us: load again
                raise

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; the waiters re-raise it
            raise
        else:
            self._entries[key] = value
            future.set_result(value)
            return value
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def discard_where(self, predicate: Callable[[K, V], bool]) -> int:
        """Drop every entry the predicate selects; returns how many."""
        doomed = [key for key, value in list(self._entries.items()) if predicate(key, value)]
        for key in doomed:
            self._entries.pop(key, None)
        return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)
