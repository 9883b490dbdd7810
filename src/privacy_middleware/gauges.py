"""Gauges an operator alerts on, refreshed when /metrics is scraped (at most every few seconds).

Audit queue depth and spool size come from this process; checkpoint age, open and overdue subject
requests from the store; key-provider health from a real wrap/unwrap round trip (at most once a
minute, so a KMS is not billed per scrape). Dropped audit events are the counter
`privacy_audit_events_dropped_total`. A gauge that cannot be read is NaN, never a guess.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import time
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger("privacy_middleware.gauges")
STORE_EVERY = 10.0
KEYS_EVERY = 60.0
TIMEOUT = 5.0


def _spool_bytes(writer: Any) -> float:
    spool = getattr(writer, "spool", None)
    if spool is None:
        return math.nan
    total = 0
    for path in (spool.path, spool.replaying):
        try:
            total += os.stat(path).st_size
        except FileNotFoundError:
            continue
    return float(total)


class OperatorGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge(
            "privacy_audit_queue_depth", "Audit events waiting in memory to be written.", registry=registry
        )
        self.spool_bytes = Gauge(
            "privacy_audit_spool_bytes",
            "Bytes of audit events spooled to local disk (store unreachable).",
            registry=registry,
        )
        self.checkpoint_age = Gauge(
            "privacy_audit_checkpoint_age_seconds",
            "Seconds since the last signed audit checkpoint (NaN before the first).",
            registry=registry,
        )
        self.requests_open = Gauge("privacy_subject_requests_open", "Open data-subject requests.", registry=registry)
        self.requests_overdue = Gauge(
            "privacy_subject_requests_overdue", "Open data-subject requests past their due date.", registry=registry
        )
        self.key_provider_up = Gauge(
            "privacy_key_provider_up",
            "1 when the root key provider answered a wrap/unwrap round trip.",
            registry=registry,
        )
        self._store_at = -math.inf
        self._keys_at = -math.inf

    async def refresh(self, runtime: Any) -> None:
        writer = getattr(runtime, "audit", None)
        queue = getattr(writer, "_queue", None)
        self.queue_depth.set(len(queue) if queue is not None else math.nan)
        self.spool_bytes.set(_spool_bytes(writer))
        now = time.monotonic()
        if now - self._store_at >= STORE_EVERY:
            self._store_at = now
            await self._refresh_store(runtime.database)
        if now - self._keys_at >= KEYS_EVERY:
            self._keys_at = now
            self.key_provider_up.set(1.0 if await self._keys_answer(runtime) else 0.0)

    async def _refresh_store(self, database: Any) -> None:
        from .store.audit import audit_chains
        from .store.rights import OPEN_STATUSES, rights_requests, utcnow

        try:
            async with asyncio.timeout(TIMEOUT), database.connect() as conn:
                last = (await conn.execute(sa.select(sa.func.max(audit_chains.c.checkpoint_us)))).scalar()
                t = rights_requests
                open_count, overdue = (
                    await conn.execute(
                        sa.select(
                            sa.func.count(),
                            sa.func.count().filter(t.c.due_at < utcnow()),
                        ).where(t.c.status.in_(list(OPEN_STATUSES)))
                    )
                ).one()
        except Exception as exc:  # the store is down: say we do not know
            log.warning("gauges: the privacy store did not answer (%s)", type(exc).__name__)
            for gauge in (self.checkpoint_age, self.requests_open, self.requests_overdue):
                gauge.set(math.nan)
            return
        self.checkpoint_age.set(time.time() - last / 1e6 if last else math.nan)
        self.requests_open.set(open_count)
        self.requests_overdue.set(overdue)

    async def _keys_answer(self, runtime: Any) -> bool:
        try:
            async with asyncio.timeout(TIMEOUT):
                service = await runtime.keys.get()
                key = secrets.token_bytes(32)
                context = {"purpose": "health-check"}
                wrapped = await service.provider.wrap(key, context=context)
                return bool(await service.provider.unwrap(wrapped, context=context) == key)
        except Exception as exc:
            log.warning("gauges: the key provider did not answer (%s)", type(exc).__name__)
            return False
