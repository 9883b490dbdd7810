"""Consent tables and repository: an append-only history per holder, plus visitor->account links.

Rows are only ever inserted. The current state is derived from the history (`derive_state`), so
what a person chose, and when, can always be shown to them and to an auditor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .consent_records import (
    ConsentRecord,
    ConsentState,
    Holder,
    HolderKind,
    Method,
    derive_state,
)
from .database import Database
from .tables import metadata

consent_records = sa.Table(
    "privacy_consent_records",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("record_id", sa.String(36), nullable=False, unique=True),
    sa.Column("holder_kind", sa.String(16), nullable=False),
    sa.Column("holder_id", sa.String(128), nullable=False),
    sa.Column("purposes", sa.JSON, nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ip_prefix", sa.String(64), nullable=True),
    sa.Column("ua_family", sa.String(32), nullable=False),
    sa.Column("linked_from", sa.String(128), nullable=True),
    sa.Column("receipt", sa.Text, nullable=True),
    sa.Index("ix_privacy_consent_records_holder", "holder_kind", "holder_id", "seq"),
)

consent_links = sa.Table(
    "privacy_consent_links",
    metadata,
    sa.Column("visitor_id", sa.String(128), primary_key=True),
    sa.Column("subject_id", sa.String(128), nullable=False, index=True),
    sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
)


class AlreadyLinked(Exception):
    """The visitor id is already linked to another subject."""


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything this layer writes is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _row_to_record(row: sa.Row[Any]) -> ConsentRecord:
    return ConsentRecord(
        id=row.record_id,
        holder=Holder(cast(HolderKind, row.holder_kind), row.holder_id),
        purposes={str(k): bool(v) for k, v in dict(row.purposes).items()},
        policy_version=row.policy_version,
        method=cast(Method, row.method),
        recorded_at=_aware(row.recorded_at),
        ip_prefix=row.ip_prefix,
        ua_family=row.ua_family,
        linked_from=row.linked_from,
        receipt=row.receipt,
    )


class ConsentRepository:
    """Reads and appends consent history. Every method is one short transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @staticmethod
    def _values(record: ConsentRecord) -> dict[str, Any]:
        return {
            "record_id": record.id,
            "holder_kind": record.holder.kind,
            "holder_id": record.holder.id,
            "purposes": dict(sorted(record.purposes.items())),
            "policy_version": record.policy_version,
            "method": record.method,
            "recorded_at": record.recorded_at,
            "ip_prefix": record.ip_prefix,
            "ua_family": record.ua_family,
            "linked_from": record.linked_from,
            "receipt": record.receipt,
        }

    async def append(self, record: ConsentRecord) -> None:
        async with self.database.begin() as conn:
            await conn.execute(consent_records.insert().values(**self._values(record)))

    @staticmethod
    async def _history(conn: AsyncConnection, holder: Holder) -> list[ConsentRecord]:
        query = (
            sa.select(consent_records)
            .where(consent_records.c.holder_kind == holder.kind, consent_records.c.holder_id == holder.id)
            .order_by(consent_records.c.seq)
        )
        return [_row_to_record(row) for row in (await conn.execute(query)).all()]

    async def history(self, holder: Holder) -> list[ConsentRecord]:
        """Every record of this holder, oldest first."""
        async with self.database.connect() as conn:
            return await self._history(conn, holder)

    async def current(self, holder: Holder) -> ConsentState:
        return derive_state(holder, await self.history(holder))

    async def linked_subject(self, visitor_id: str) -> str | None:
        async with self.database.connect() as conn:
            result = await conn.execute(
                sa.select(consent_links.c.subject_id).where(consent_links.c.visitor_id == visitor_id)
            )
            return result.scalar_one_or_none()

    async def visitors_of(self, subject_id: str) -> list[str]:
        async with self.database.connect() as conn:
            result = await conn.execute(
                sa.select(consent_links.c.visitor_id)
                .where(consent_links.c.subject_id == subject_id)
                .order_by(consent_links.c.linked_at, consent_links.c.visitor_id)
            )
            return list(result.scalars())

    async def link(
        self,
        visitor_id: str,
        subject_id: str,
        build: Callable[[ConsentState, ConsentState], ConsentRecord | None],
        *,
        at: dt.datetime,
    ) -> ConsentRecord | None:
        """Move a visitor's choices to a subject in one transaction.

        `build(visitor_state, subject_state)` returns the `account_link` record to append (or None
        when nothing moves). A visitor links to one subject only; linking again to the same subject
        is a no-op, to another one is refused with `AlreadyLinked`.
        """
        async with self.database.begin() as conn:
            existing = (
                await conn.execute(
                    sa.select(consent_links.c.subject_id).where(consent_links.c.visitor_id == visitor_id)
                )
            ).scalar_one_or_none()
            if existing is not None:
                if existing != subject_id:
                    raise AlreadyLinked()
                return None
            visitor = Holder.visitor(visitor_id)
            subject = Holder.subject(subject_id)
            visitor_state = derive_state(visitor, await self._history(conn, visitor))
            subject_state = derive_state(subject, await self._history(conn, subject))
            await conn.execute(
                consent_links.insert().values(visitor_id=visitor_id, subject_id=subject_id, linked_at=at)
            )
            record = build(visitor_state, subject_state)
            if record is not None:
                await conn.execute(consent_records.insert().values(**self._values(record)))
            return record
