"""Subject-rights storage: durable request records with their step history, subject flags
(restriction, objections) and exports kept for retrieval (sealed for the subject).

Requests are the proof that a person's request was received, worked on and answered in time, so a
request row is never deleted; its history of steps only grows. Flags are read on every filtered
response, hence `subject_flags` is one primary-key lookup.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import Database
from .tables import metadata

RequestKind = Literal["access", "transfer", "erasure", "rectification", "restriction", "objection"]
RequestStatus = Literal["received", "in_progress", "completed", "failed", "rejected"]
OPEN_STATUSES: tuple[str, ...] = ("received", "in_progress")
KINDS: tuple[str, ...] = ("access", "transfer", "erasure", "rectification", "restriction", "objection")

rights_requests = sa.Table(
    "privacy_rights_requests",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    # Only the kind of failure and the step name; never a personal value.
    sa.Column("failed_step", sa.String(40), nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("steps", sa.JSON, nullable=False),
    # Non-personal outcome: the signed erasure receipt, changed field names, target host...
    sa.Column("result", sa.JSON, nullable=True),
    sa.Index("ix_privacy_rights_requests_subject_kind", "subject", "kind", "status"),
    sa.Index("ix_privacy_rights_requests_status_due", "status", "due_at"),
)

subject_flags_table = sa.Table(
    "privacy_subject_flags",
    metadata,
    sa.Column("subject", sa.String(200), primary_key=True),
    sa.Column("restricted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("objections", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

rights_exports = sa.Table(
    "privacy_rights_exports",
    metadata,
    sa.Column("request_id", sa.String(40), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False, index=True),
    # A pe1 envelope sealed under the subject's key: crypto-shredding makes it unreadable too.
    sa.Column("sealed", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

RIGHTS_TABLES = (rights_requests, subject_flags_table, rights_exports)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    outcome: Literal["started", "done", "failed", "skipped"]
    at: dt.datetime
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome, "at": self.at.isoformat(), "detail": self.detail}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Step:
        return cls(raw["name"], raw["outcome"], dt.datetime.fromisoformat(raw["at"]), dict(raw.get("detail", {})))


@dataclass(frozen=True, slots=True)
class RightsRequest:
    id: str
    kind: str
    subject: str
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    due_at: dt.datetime
    completed_at: dt.datetime | None
    principal: str
    reason: str | None
    idempotency_key: str | None
    failed_step: str | None
    error: str | None
    attempts: int
    steps: tuple[Step, ...]
    result: dict[str, Any] | None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def overdue(self, now: dt.datetime | None = None) -> bool:
        return self.is_open and self.due_at < (now or utcnow())

    def done_steps(self) -> set[str]:
        return {s.name for s in self.steps if s.outcome == "done"}

    def to_json(self, now: dt.datetime | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "subject": self.subject,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "overdue": self.overdue(now),
            "acting_principal": self.principal,
            "reason": self.reason,
            "failed_step": self.failed_step,
            "error": self.error,
            "attempts": self.attempts,
            "steps": [s.to_json() for s in self.steps],
            "result": self.result,
        }


def _row(row: Any) -> RightsRequest:
    created = _aware(row.created_at)
    updated = _aware(row.updated_at)
    due = _aware(row.due_at)
    assert created is not None and updated is not None and due is not None
    return RightsRequest(
        id=row.id,
        kind=row.kind,
        subject=row.subject,
        status=row.status,
        created_at=created,
        updated_at=updated,
        due_at=due,
        completed_at=_aware(row.completed_at),
        principal=row.principal,
        reason=row.reason,
        idempotency_key=row.idempotency_key,
        failed_step=row.failed_step,
        error=row.error,
        attempts=row.attempts,
        steps=tuple(Step.from_json(s) for s in (row.steps or [])),
        result=row.result,
    )


class RightsRepository:
    """Request records and exports; every method is one short transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def _by(self, conn: AsyncConnection, clause: sa.ColumnElement[bool]) -> RightsRequest | None:
        row = (await conn.execute(sa.select(rights_requests).where(clause))).first()
        return _row(row) if row is not None else None

    async def submit(
        self,
        *,
        kind: str,
        subject: str,
        principal: str,
        due_at: dt.datetime,
        reason: str | None = None,
        idempotency_key: str | None = None,
        reuse_open: bool = True,
        reuse_completed: bool = False,
        now: dt.datetime | None = None,
    ) -> tuple[RightsRequest, bool]:
        """Record a request, or return the one it repeats; the flag says whether it is new.

        A repeat is the same Idempotency-Key (for this subject), or, with `reuse_open`, an open
        request of the same type for the same subject (with `reuse_completed`, also a completed one:
        an erasure is done once).
        """
        if kind not in KINDS:
            raise ValueError("unknown request type")
        now = now or utcnow()
        for _ in range(2):
            try:
                return await self._submit_once(
                    kind=kind,
                    subject=subject,
                    principal=principal,
                    due_at=due_at,
                    reason=reason,
                    idempotency_key=idempotency_key,
                    reuse_open=reuse_open,
                    reuse_completed=reuse_completed,
                    now=now,
                )
            except IntegrityError:
                continue  # a concurrent submission with the same key won: read it back
        raise KeyReused()

    async def _submit_once(
        self,
        *,
        kind: str,
        subject: str,
        principal: str,
        due_at: dt.datetime,
        reason: str | None,
        idempotency_key: str | None,
        reuse_open: bool,
        reuse_completed: bool,
        now: dt.datetime,
    ) -> tuple[RightsRequest, bool]:
        async with self.database.begin() as conn:
            # Serialise submissions for one subject so "same type while open" holds under concurrency.
            if self.database.is_postgres:
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": "rights:" + subject})
            else:  # a first write takes SQLite's write lock before the reads below
                await conn.execute(rights_requests.update().where(rights_requests.c.id == "").values(updated_at=now))
            if idempotency_key is not None:
                found = await self._by(conn, rights_requests.c.idempotency_key == idempotency_key)
                if found is not None:
                    if found.subject != subject or found.kind != kind:
                        raise KeyReused()
                    return found, False
            if reuse_open:
                reusable = [*OPEN_STATUSES, "completed"] if reuse_completed else list(OPEN_STATUSES)
                row = (
                    await conn.execute(
                        sa.select(rights_requests)
                        .where(
                            rights_requests.c.subject == subject,
                            rights_requests.c.kind == kind,
                            rights_requests.c.status.in_(reusable),
                        )
                        .order_by(rights_requests.c.created_at)
                        .limit(1)
                    )
                ).first()
                if row is not None:
                    return _row(row), False
            request_id = "dsr_" + uuid.uuid4().hex
            await conn.execute(
                rights_requests.insert().values(
                    id=request_id,
                    kind=kind,
                    subject=subject,
                    status="received",
                    created_at=now,
                    updated_at=now,
                    due_at=due_at,
                    principal=principal,
                    reason=reason,
                    idempotency_key=idempotency_key,
                    attempts=0,
                    steps=[Step("received", "done", now).to_json()],
                )
            )
            found = await self._by(conn, rights_requests.c.id == request_id)
            assert found is not None
            return found, True

    async def get(self, request_id: str) -> RightsRequest | None:
        async with self.database.connect() as conn:
            return await self._by(conn, rights_requests.c.id == request_id)

    async def record_step(
        self,
        request_id: str,
        step: Step,
        *,
        status: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        count_attempt: bool = False,
    ) -> RightsRequest:
        """Append a step; a failed step names itself in `failed_step`, a done one clears it."""
        async with self.database.begin() as conn:
            current = await self._by(conn, rights_requests.c.id == request_id)
            if current is None:
                raise LookupError("no such request")
            values: dict[str, Any] = {
                "steps": [*(s.to_json() for s in current.steps), step.to_json()],
                "updated_at": step.at,
            }
            if step.outcome == "failed":
                values.update(failed_step=step.name, error=(error or "failed")[:500])
            elif step.outcome == "done":
                values.update(failed_step=None, error=None)
            if status is not None:
                values["status"] = status
                if status in ("completed", "failed", "rejected"):
                    values["completed_at"] = step.at
                if status == "failed":
                    values.update(failed_step=step.name, error=(error or "failed")[:500])
            if result is not None:
                values["result"] = {**(current.result or {}), **result}
            if count_attempt:
                values["attempts"] = current.attempts + 1
            await conn.execute(rights_requests.update().where(rights_requests.c.id == request_id).values(**values))
            found = await self._by(conn, rights_requests.c.id == request_id)
            assert found is not None
            return found

    async def for_subject(self, subject: str, *, limit: int = 200) -> list[RightsRequest]:
        async with self.database.connect() as conn:
            rows = await conn.execute(
                sa.select(rights_requests)
                .where(rights_requests.c.subject == subject)
                .order_by(rights_requests.c.created_at.desc())
                .limit(limit)
            )
            return [_row(r) for r in rows]

    async def completed(self, subject: str, kind: str) -> RightsRequest | None:
        async with self.database.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(rights_requests)
                    .where(
                        rights_requests.c.subject == subject,
                        rights_requests.c.kind == kind,
                        rights_requests.c.status == "completed",
                    )
                    .order_by(rights_requests.c.completed_at)
                    .limit(1)
                )
            ).first()
            return _row(row) if row is not None else None

    async def listing(
        self, *, status: Sequence[str] | None = None, limit: int = 200, now: dt.datetime | None = None
    ) -> list[RightsRequest]:
        """Admin view: overdue open requests first (most overdue first), then the rest, newest first."""
        now = now or utcnow()
        t = rights_requests
        overdue = sa.and_(t.c.status.in_(OPEN_STATUSES), t.c.due_at < now)
        query = sa.select(t)
        if status:
            query = query.where(t.c.status.in_(list(status)))
        query = query.order_by(
            sa.case((overdue, 0), else_=1),
            sa.case((overdue, t.c.due_at), else_=None),
            t.c.created_at.desc(),
        ).limit(limit)
        async with self.database.connect() as conn:
            return [_row(r) for r in await conn.execute(query)]

    async def open_requests(self, kind: str | None = None, *, limit: int = 500) -> list[RightsRequest]:
        query = sa.select(rights_requests).where(rights_requests.c.status.in_(OPEN_STATUSES))
        if kind is not None:
            query = query.where(rights_requests.c.kind == kind)
        async with self.database.connect() as conn:
            rows = await conn.execute(query.order_by(rights_requests.c.due_at).limit(limit))
            return [_row(r) for r in rows]

    # -- exports kept for retrieval -------------------------------------------------------------

    async def keep_export(self, request_id: str, subject: str, sealed: str) -> None:
        async with self.database.begin() as conn:
            await conn.execute(sa.delete(rights_exports).where(rights_exports.c.request_id == request_id))
            await conn.execute(
                rights_exports.insert().values(
                    request_id=request_id, subject=subject, sealed=sealed, created_at=utcnow()
                )
            )

    async def kept_export(self, request_id: str) -> tuple[str, str] | None:
        """(subject, sealed export) for a request, if one was kept."""
        async with self.database.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(rights_exports.c.subject, rights_exports.c.sealed).where(
                        rights_exports.c.request_id == request_id
                    )
                )
            ).first()
            return (row.subject, row.sealed) if row is not None else None

    async def forget_subject(self, subject: str) -> dict[str, int]:
        """Erasure of the middleware's own rights data: kept exports and flags (requests stay as proof)."""
        async with self.database.begin() as conn:
            exports = await conn.execute(sa.delete(rights_exports).where(rights_exports.c.subject == subject))
            flags = await conn.execute(sa.delete(subject_flags_table).where(subject_flags_table.c.subject == subject))
            return {"exports": exports.rowcount or 0, "flags": flags.rowcount or 0}


class KeyReused(Exception):
    """The Idempotency-Key was already used for another subject or request type."""


# -- subject flags ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubjectFlags:
    """What the response filter and the consent layer must honour for one subject."""

    subject: str
    restricted: bool = False
    objections: frozenset[str] = frozenset()
    updated_at: dt.datetime | None = None

    def objects_to(self, purpose: str) -> bool:
        return purpose in self.objections

    def to_json(self) -> dict[str, Any]:
        return {
            "restricted": self.restricted,
            "objections": sorted(self.objections),
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


async def subject_flags(db: Database, subject: str) -> SubjectFlags:
    """One primary-key read: the subject's restriction and objections (no row: nothing set)."""
    async with db.connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    subject_flags_table.c.restricted,
                    subject_flags_table.c.objections,
                    subject_flags_table.c.updated_at,
                ).where(subject_flags_table.c.subject == subject)
            )
        ).first()
    if row is None:
        return SubjectFlags(subject)
    return SubjectFlags(subject, bool(row.restricted), frozenset(row.objections or ()), _aware(row.updated_at))


async def update_flags(
    db: Database,
    subject: str,
    *,
    restricted: bool | None = None,
    add_objections: Sequence[str] = (),
    remove_objections: Sequence[str] = (),
) -> SubjectFlags:
    """Change a subject's flags in one transaction (row created on first use)."""
    now = utcnow()
    async with db.begin() as conn:
        # Serialise concurrent changes of one subject's flags (read-modify-write below).
        if db.is_postgres:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": "flags:" + subject})
        else:  # a first write takes SQLite's write lock before the read
            await conn.execute(
                subject_flags_table.update().where(subject_flags_table.c.subject == subject).values(updated_at=now)
            )
        row = (
            await conn.execute(sa.select(subject_flags_table).where(subject_flags_table.c.subject == subject))
        ).first()
        current_restricted = bool(row.restricted) if row is not None else False
        objections = set(row.objections or ()) if row is not None else set()
        objections |= set(add_objections)
        objections -= set(remove_objections)
        new_restricted = current_restricted if restricted is None else restricted
        values = {"restricted": new_restricted, "objections": sorted(objections), "updated_at": now}
        if row is None:
            await conn.execute(subject_flags_table.insert().values(subject=subject, **values))
        else:
            await conn.execute(
                subject_flags_table.update().where(subject_flags_table.c.subject == subject).values(**values)
            )
    return SubjectFlags(subject, new_restricted, frozenset(objections), now)


async def forget_consent(db: Database, subject: str) -> dict[str, int]:
    """Drop a subject's consent identities: their records, their linked visitors' records and the links.

    Used by erasure only: the consent store is otherwise append-only.
    """
    from .consent import consent_links, consent_records

    async with db.begin() as conn:
        visitors = list(
            (
                await conn.execute(sa.select(consent_links.c.visitor_id).where(consent_links.c.subject_id == subject))
            ).scalars()
        )
        removed = await conn.execute(
            sa.delete(consent_records).where(
                sa.or_(
                    sa.and_(consent_records.c.holder_kind == "subject", consent_records.c.holder_id == subject),
                    sa.and_(consent_records.c.holder_kind == "visitor", consent_records.c.holder_id.in_(visitors)),
                    consent_records.c.linked_from.in_(visitors),
                )
            )
        )
        links = await conn.execute(sa.delete(consent_links).where(consent_links.c.subject_id == subject))
        return {"records": removed.rowcount or 0, "links": links.rowcount or 0}


async def forget_audit_side_records(db: Database, subject: str) -> int:
    """Erase the raw personal values (IP, username, user agent) sealed beside the subject's audit
    events. The events stay and the log still verifies: leaves hold only commitments to them."""
    from .audit import about_subject_in_any_chain, audit_events, audit_side_records

    async with db.begin() as conn:
        # found through the subject index, then only the subject's own (a listing has no side record)
        about = await about_subject_in_any_chain(conn, subject)
        own = sa.and_(about, audit_events.c.subject == subject)
        uids = sa.select(audit_events.c.uid).where(own).scalar_subquery()
        result = await conn.execute(sa.delete(audit_side_records).where(audit_side_records.c.event_uid.in_(uids)))
        return result.rowcount or 0
