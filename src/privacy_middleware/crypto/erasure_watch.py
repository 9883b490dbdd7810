"""No instance uses an erased subject's cached key beyond a bound.

The erasure is durable first (the store's erasure epoch, bumped in the transaction that destroys
the key), then broadcast on the bus. Every instance evicts on the broadcast (milliseconds), reads
the epoch from the store every `poll_seconds` and after the bus reconnects (a broadcast lost while
Redis was away), and treats its key cache as untrusted once its last successful read is older than
`bound_seconds`: keys are then re-read from the store, which knows every tombstone (and answers 503
while it is unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from ..loops import Stopper
from ..store import Database
from ..store.erasures import current_epoch, erasures_since

logger = logging.getLogger("privacy_middleware.crypto")


class ErasureWatch:
    def __init__(
        self,
        database: Database,
        tenant: str,
        evict: Callable[[str], Awaitable[object]],
        *,
        poll_seconds: float = 0.25,
        bound_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < poll_seconds < bound_seconds:
            raise ValueError("the erasure poll interval must be positive and shorter than the bound")
        self.database = database
        self.tenant = tenant
        self.evict = evict
        self.poll_seconds = poll_seconds
        self.bound_seconds = bound_seconds
        self._clock = clock
        self.epoch = 0
        self._synced_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._stopper = Stopper()
        self._lock = asyncio.Lock()
        self._failing = False

    def fresh(self) -> bool:
        """Whether every erasure older than the bound is known to this instance."""
        return self._clock() - self._synced_at <= self.bound_seconds

    async def sync(self) -> int:
        """Evict the subjects erased since the last read; returns how many."""
        async with self._lock:
            started = self._clock()
            async with self.database.connect() as conn:
                epoch = await current_epoch(conn, self.tenant)
                erased = await erasures_since(conn, self.tenant, self.epoch) if epoch > self.epoch else []
            for seen, subject_hash in erased:
                await self.evict(subject_hash)
                self.epoch = max(self.epoch, seen)
            self.epoch = max(self.epoch, epoch)
            self._synced_at = started
            return len(erased)

    async def start(self) -> None:
        """Begin at the current epoch (nothing is cached yet) and follow it in the background."""
        if self._task is not None:
            return
        with contextlib.suppress(Exception):
            async with self.database.connect() as conn:
                self.epoch = await current_epoch(conn, self.tenant)
            self._synced_at = self._clock()
        self._stopper.reset()
        self._task = asyncio.create_task(self._run(), name="privacy-erasure-watch")

    async def _run(self) -> None:
        while not await self._stopper.pause(self.poll_seconds):
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is away: the cache goes untrusted after the bound
                if not self._failing:
                    logger.warning("erasure epoch unreadable (%s): key cache bypassed", type(exc).__name__)
                self._failing = True
            else:
                if self._failing:
                    logger.warning("erasure epoch readable again")
                self._failing = False

    async def on_reconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self.sync()

    async def stop(self) -> None:
        await self._stopper.stop(self._task)
        self._task = None
