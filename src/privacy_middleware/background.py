"""Background work that must run on one instance only: retention, resuming open erasures and
forgetting expired login counters, under the leadership of `store.leader` (fenced by its term)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .store.leader import Leadership, lead
from .store.login_attempts import purge_expired

if TYPE_CHECKING:
    from .runtime import Runtime

logger = logging.getLogger("privacy_middleware")


def maintenance_task(runtime: Runtime, interval: float) -> asyncio.Task[None]:
    leadership = Leadership(runtime.database, "maintenance")
    rights = runtime.rights
    assert rights is not None

    async def work(term: int) -> None:
        await runtime.retention.run()
        if not await leadership.still_leading():  # fenced: a newer leader took over meanwhile
            return
        await rights.retry_open()
        await purge_expired(runtime.database, time.time() - 60)

    return asyncio.create_task(lead(leadership, work, interval=interval), name="privacy-maintenance")
