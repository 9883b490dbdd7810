"""Restriction and objection flags as the request path sees them: a short-lived cache that every
instance drops at once when any instance changes a subject's flags (topic `subject-flags`).

The bus carries an opaque digest of the subject id, never the id itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from cachetools import TTLCache

from ..store.bus import Bus
from ..store.database import Database
from ..store.rights import SubjectFlags, subject_flags, update_flags

TOPIC = "subject-flags"
log = logging.getLogger(__name__)


def flags_key(subject: str) -> str:
    return hashlib.sha256(b"subject-flags:" + subject.encode()).hexdigest()[:32]


class SubjectFlagsCache:
    """Read-through cache of `subject_flags`; writes go through `set` so every instance hears of them."""

    def __init__(self, database: Database, *, bus: Bus | None = None, ttl: float = 5.0, size: int = 10_000) -> None:
        self.database = database
        self.bus = bus
        self._cache: TTLCache[str, SubjectFlags] = TTLCache(maxsize=size, ttl=ttl)
        self._generation = 0
        if bus is not None:
            bus.subscribe(TOPIC, self._on_changed)

    async def _on_changed(self, payload: str) -> None:
        self._generation += 1
        self._cache.pop(payload, None)

    async def get(self, subject: str) -> SubjectFlags:
        key = flags_key(subject)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        generation = self._generation
        flags = await subject_flags(self.database, subject)
        if generation == self._generation:  # a change raced with this read: do not cache it
            self._cache[key] = flags
        return flags

    async def set(
        self,
        subject: str,
        *,
        restricted: bool | None = None,
        add_objections: Sequence[str] = (),
        remove_objections: Sequence[str] = (),
    ) -> SubjectFlags:
        flags = await update_flags(
            self.database,
            subject,
            restricted=restricted,
            add_objections=add_objections,
            remove_objections=remove_objections,
        )
        await self.invalidate(subject)
        return flags

    async def invalidate(self, subject: str) -> None:
        key = flags_key(subject)
        self._generation += 1
        self._cache.pop(key, None)
        if self.bus is None:
            return
        try:
            await self.bus.publish(TOPIC, key)
        except Exception as exc:  # other instances catch up within one cache TTL
            log.warning("subject flag change not broadcast (%s)", exc.__class__.__name__)
