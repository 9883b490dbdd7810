"""Rate limits on guest codes shared by every instance: Redis when configured, else the store.

A limit kept in one process's memory would let a caller multiply it by the number of instances
behind the load balancer. Each window is a counter that starts with the first event and expires
`seconds` later (a fixed window). Keys are keyed hashes made by the guest service (never an
address or an IP). When the shared counter cannot be reached the request is refused with 503
`rate_limit_unavailable`: a code is never sent, nor checked, without its limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from ..audit.counters import CounterBackend
from ..errors import PrivacyError
from ..store.database import Database
from ..store.login_attempts import lock_counters, write_counters

logger = logging.getLogger("privacy_middleware.guests")


def unavailable() -> PrivacyError:
    return PrivacyError(
        "rate_limit_unavailable",
        "Codes cannot be sent or checked right now; try again.",
        503,
        headers={"Retry-After": "5"},
    )


class SharedLimit(Protocol):
    async def hit(self, key: str, limit: int, seconds: float) -> bool:
        """Count one event under `key`; False when `limit` events already happened in the window."""
        ...


class CounterLimit:
    """Counters of the login guard's backend (Redis: shared; memory: one instance, for tests)."""

    def __init__(self, counters: CounterBackend) -> None:
        self.counters = counters

    async def hit(self, key: str, limit: int, seconds: float) -> bool:
        try:
            return await self.counters.incr(key, seconds, refresh=False) <= limit
        except (RedisError, OSError) as exc:
            logger.warning("guest rate limit unreachable: %s", type(exc).__name__)
            raise unavailable() from None


class StoreLimit:
    """Counter rows in the store, locked for the increment (PostgreSQL row lock, SQLite write lock)."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    async def hit(self, key: str, limit: int, seconds: float) -> bool:
        try:
            async with self.database.begin() as conn:
                value, expires = (await lock_counters(self.database, conn, [key]))[key]
                now = self.clock()
                if expires <= now:
                    value, expires = 0, now + seconds
                if value >= limit:
                    return False
                await write_counters(self.database, conn, {key: (value + 1, expires)})
                return True
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("guest rate limit unreachable: %s", type(exc).__name__)
            raise unavailable() from None
