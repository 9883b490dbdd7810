"""Record owners: which subject a record of the shop belongs to, when the record does not say.

A guest's order names no account, and a shop may name the owner in a form that is not the subject
id (a URL). When the shop creates such a record for a subject (a checkout whose fields were sealed
under that subject's key), the record's own id is bound to the subject here, so that a recipient
the policy grants can later have the record's fields revealed under the right key. Only a keyed
blind index of the record id is stored (the tenant's index key), never the id itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .database import Database
from .tables import metadata

record_owners = sa.Table(
    "privacy_record_owners",
    metadata,
    sa.Column("record_hash", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

Index = Callable[[str, str], Awaitable[str]]
MAX_LOOKUP = 500


class RecordOwners:
    """Bind and look up record owners; `index(value, category)` is the key service's blind index."""

    def __init__(self, database: Database, index: Index) -> None:
        self.database = database
        self.index = index

    async def _hash(self, kind: str, key: str) -> str:
        return await self.index(key, f"record.{kind or 'route'}")

    async def bind(self, kind: str, keys: Sequence[str], subject: str) -> int:
        """Bind each record key to the subject; a key already bound keeps its first owner."""
        hashes = sorted({await self._hash(kind, key) for key in keys if key})
        if not hashes:
            return 0
        now = dt.datetime.now(dt.UTC)
        insert = postgresql.insert(record_owners) if self.database.is_postgres else sqlite.insert(record_owners)
        async with self.database.begin() as conn:
            result = await conn.execute(
                insert.values(
                    [{"record_hash": h, "subject": subject, "created_at": now} for h in hashes]
                ).on_conflict_do_nothing()
            )
        return int(result.rowcount or 0)

    async def owners(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        """record key -> bound subject, for the keys that are bound."""
        wanted: dict[str, list[str]] = {}
        for key in dict.fromkeys(keys):
            if key:
                wanted.setdefault(await self._hash(kind, key), []).append(key)
        found: dict[str, str] = {}
        hashes = list(wanted)
        for start in range(0, len(hashes), MAX_LOOKUP):
            chunk = hashes[start : start + MAX_LOOKUP]
            async with self.database.connect() as conn:
                rows = await conn.execute(
                    sa.select(record_owners.c.record_hash, record_owners.c.subject).where(
                        record_owners.c.record_hash.in_(chunk)
                    )
                )
                for row in rows:
                    for key in wanted[row.record_hash]:
                        found[key] = str(row.subject)
        return found


async def forget_record_owners(db: Database, subject: str) -> int:
    """Erasure: the subject's bindings go with their key (the records are unreadable anyway)."""
    async with db.begin() as conn:
        result = await conn.execute(sa.delete(record_owners).where(record_owners.c.subject == subject))
        return int(result.rowcount or 0)
