"""Background work that must run on one instance only: retention (the policy's rules over the
shop's data, and the audit trail's own periods), resuming open erasures and forgetting expired
login counters, under the leadership of `store.leader` (fenced by its term)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .loops import Stopper
from .store import Database
from .store.leader import Leadership, lead
from .store.login_attempts import purge_expired


def maintenance_task(
    database: Database,
    retention: Callable[[], Awaitable[Any]],
    retry_open: Callable[[], Awaitable[Any]],
    interval: float,
    stopper: Stopper,
    audit_retention: Callable[[], Awaitable[Any]] | None = None,
) -> asyncio.Task[None]:
    leadership = Leadership(database, "maintenance")

    async def work(term: int) -> None:
        await retention()
        if not await leadership.still_leading():  # fenced: a newer leader took over meanwhile
            return
        await retry_open()
        await purge_expired(database, time.time() - 60)
        if audit_retention is not None and await leadership.still_leading():
            await audit_retention()

    return asyncio.create_task(
        lead(leadership, work, interval=interval, stop=stopper.event), name="privacy-maintenance"
    )
