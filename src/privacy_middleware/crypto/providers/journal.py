"""A root-side tombstone journal for remote providers: one marker per line in a private file.

Vault and KMS cannot hold our erasure markers, so `tombstone_file=` in the PRIVACY_KEYS URL
names a file kept apart from the database (another volume, its own backup); markers in it are
replayed into the store at start-up, so restoring an old database does not revive erased keys.
"""

from __future__ import annotations

import asyncio
import os

from ...keyfiles import check_private, create_private, exclusive


class TombstoneJournal:
    def __init__(self, path: str) -> None:
        self.path = path

    def _ensure(self) -> None:
        if not os.path.exists(self.path):
            create_private(self.path, b"")
        check_private(self.path, "tombstone file")

    def _append(self, marker: str) -> None:
        self._ensure()
        with exclusive(self.path), open(self.path, "a", encoding="ascii") as handle:
            handle.write(marker + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _load(self) -> frozenset[str]:
        self._ensure()
        with open(self.path, encoding="ascii") as handle:
            return frozenset(line.strip() for line in handle if line.strip())

    async def record(self, marker: str) -> None:
        await asyncio.to_thread(self._append, marker)

    async def load(self) -> frozenset[str]:
        return await asyncio.to_thread(self._load)
