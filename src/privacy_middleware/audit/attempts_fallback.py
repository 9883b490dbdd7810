"""Logins keep working while the shared ledger (Redis or the store) is unreachable: attempts are
counted on this instance alone, with a warning and a metric, so limits still hold per instance.

After a failure the shared ledger is left alone for `retry_seconds` (no connect timeout on every
login), then tried again. A reservation is settled on the ledger that made it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError

from .attempts import AttemptKeys, AttemptLedger, Lockout, LoginLimits, MemoryLedger, Outcome, Reservation

logger = logging.getLogger("privacy_middleware.audit")

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, OperationalError, DBAPIError, TimeoutError)


class FallbackLedger:
    def __init__(
        self,
        shared: AttemptLedger,
        *,
        name: str,
        registry: CollectorRegistry | None = None,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self.local = MemoryLedger()
        self._name = name
        self._retry = retry_seconds
        self._clock = clock
        self._down_until = 0.0
        self.degraded = False
        registry = registry or CollectorRegistry()
        self._fallbacks = Counter(
            "privacy_login_counter_fallbacks",
            "Login attempts counted on this instance only because the shared counters were unreachable.",
            ["backend"],
            registry=registry,
        )
        self._degraded = Gauge(
            "privacy_login_counters_degraded",
            "1 while login limits are enforced per instance (shared counters unreachable).",
            registry=registry,
        )

    def _shared_usable(self) -> bool:
        return self._clock() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        self._down_until = self._clock() + self._retry
        self._fallbacks.labels(self._name).inc()
        if not self.degraded:
            logger.warning(
                "shared login counters (%s) unreachable (%s): limits are enforced per instance until it is back",
                self._name,
                type(exc).__name__,
            )
        self.degraded = True
        self._degraded.set(1)

    def _recovered(self) -> None:
        if self.degraded:
            logger.warning("shared login counters (%s) reachable again", self._name)
        self.degraded = False
        self._degraded.set(0)

    async def peek(self, keys: AttemptKeys, limits: LoginLimits) -> Lockout | None:
        if self._shared_usable():
            try:
                found = await self.shared.peek(keys, limits)
            except UNREACHABLE as exc:
                self._failed(exc)
            else:
                self._recovered()
                local = await self.local.peek(keys, limits)
                return max((f for f in (found, local) if f), key=lambda f: f.retry_after, default=None)
        return await self.local.peek(keys, limits)

    async def reserve(self, keys: AttemptKeys, limits: LoginLimits, *, force: bool = False) -> Reservation:
        if self._shared_usable():
            try:
                reservation = await self.shared.reserve(keys, limits, force=force)
            except UNREACHABLE as exc:
                self._failed(exc)
            else:
                self._recovered()
                return reservation
        self._fallbacks.labels(self._name).inc()
        reservation = await self.local.reserve(keys, limits, force=force)
        reservation.backend = "local"
        return reservation

    async def settle(
        self, keys: AttemptKeys, reservation: Reservation | None, outcome: Outcome, limits: LoginLimits
    ) -> None:
        if reservation is not None and reservation.backend == "local":
            await self.local.settle(keys, reservation, outcome, limits)
            return
        if reservation is None:
            await self.local.settle(keys, None, outcome, limits)  # a success also clears local counts
        try:
            await self.shared.settle(keys, reservation, outcome, limits)
        except UNREACHABLE as exc:
            self._failed(exc)
