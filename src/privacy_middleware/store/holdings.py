"""How many records the middleware's own tables hold about one subject (exports and the
"is this subject known at all?" check before a rights request is accepted)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .audit import about_subject_in_any_chain, audit_events
from .consent import consent_links, consent_records
from .database import Database
from .rights import rights_requests, subject_flags_table


@dataclass(frozen=True, slots=True)
class StoredCounts:
    consent_records: int
    linked_visitors: int
    audit_events: int
    rights_requests: int
    flags: int

    @property
    def any(self) -> bool:
        return any((self.consent_records, self.linked_visitors, self.audit_events, self.rights_requests, self.flags))


async def _count(conn: AsyncConnection, table: sa.Table, clause: sa.ColumnElement[bool]) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(table).where(clause))).scalar_one())


async def stored_counts(database: Database, subject: str) -> StoredCounts:
    async with database.connect() as conn:
        return StoredCounts(
            consent_records=await _count(
                conn,
                consent_records,
                sa.and_(consent_records.c.holder_kind == "subject", consent_records.c.holder_id == subject),
            ),
            linked_visitors=await _count(conn, consent_links, consent_links.c.subject_id == subject),
            audit_events=await _count(conn, audit_events, await about_subject_in_any_chain(conn, subject)),
            rights_requests=await _count(conn, rights_requests, rights_requests.c.subject == subject),
            flags=await _count(conn, subject_flags_table, subject_flags_table.c.subject == subject),
        )
