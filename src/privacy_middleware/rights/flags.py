"""Restriction and objection flags as the request path sees them: a short-lived cache that every
instance drops at once when any instance changes a subject's flags (topic `subject-flags`).

The bus carries an opaque digest of the subject id, never the id itself.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence

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
        # key -> (expires on the monotonic clock, flags): a plain dict keeps the per-request read short
        self._cache: dict[str, tuple[float, SubjectFlags]] = {}
        self._keys: dict[str, str] = {}  # subject -> its key (a digest, computed once)
        self._ttl = ttl
        self._size = size
        self._generation = 0
        if bus is not None:
            bus.subscribe(TOPIC, self._on_changed)

    async def _on_changed(self, payload: str) -> None:
        self._generation += 1
        self._cache.pop(payload, None)

    def _key(self, subject: str) -> str:
        key = self._keys.get(subject)
        if key is None:
            if len(self._keys) >= self._size:
                self._keys.clear()
            key = self._keys[subject] = flags_key(subject)
        return key

    async def get(self, subject: str) -> SubjectFlags:
        key = self._key(subject)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        flags = await subject_flags(self.database, subject)
        if generation == self._generation:  # a change raced with this read: do not cache it
            if len(self._cache) >= self._size:  # expired entries first, then the oldest half
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= self._size:
                    self._cache = dict(list(self._cache.items())[len(self._cache) // 2 :])
            self._cache[key] = (now + self._ttl, flags)
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
        key = self._key(subject)
        self._generation += 1
        self._cache.pop(key, None)
        if self.bus is None:
            return
        try:
            await self.bus.publish(TOPIC, key)
        except Exception as exc:  # other instances catch up within one cache TTL
            log.warning("subject flag change not broadcast (%s)", exc.__class__.__name__)
