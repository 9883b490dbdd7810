"""Stopping background loops between iterations, not in the middle of one.

Cancelling a task while it opens or uses a database connection can leave the driver's connection
(and, with aiosqlite, its worker thread) behind: the pool never got it back, so disposing the engine
cannot close it, and its thread may later call into a closed event loop. A loop that sleeps through
`Stopper.pause` ends at its next pause instead; cancellation stays the last resort after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib


class Stopper:
    """A stop signal a background loop checks at its pauses."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def event(self) -> asyncio.Event:
        """The underlying event, for loops that already wait on one (`store.leader.lead`)."""
        return self._event

    @property
    def stopping(self) -> bool:
        return self._event.is_set()

    async def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the loop should end now."""
        if seconds > 0 and not self._event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), seconds)
        return self._event.is_set()

    async def stop(self, task: asyncio.Task[None] | None, grace: float = 10.0) -> None:
        """Ask the loop to end at its next pause; cancel it only if it has not within `grace` seconds."""
        self._event.set()
        if task is None:
            return
        if not task.done():
            await asyncio.wait({task}, timeout=grace)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def reset(self) -> None:
        """Allow the loop to be started again after a stop."""
        self._event.clear()
