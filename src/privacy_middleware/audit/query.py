"""Reading the trail: admin search and the subject's own access log.

The admin API calls `search` (and should record the read itself with `events.admin_read`
through `AuditWriter.emit_strict`). `access_log` answers the subject's question "who saw my
data, when and why, and where did I sign in from" with coarse network hints, never raw IPs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from ..store import Database
from ..store.audit import about_subject, audit_events, audit_side_records
from .events import to_micros
from .sealing import SideRecord, SideRecordSealer

MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    time: datetime
    kind: str
    class_uid: int
    subject: str | None
    principal: str | None
    document: dict[str, Any] | None  # None once retention purged the body

    @property
    def detail(self) -> dict[str, Any]:
        if self.document is None:
            return {}
        detail = self.document.get("detail")
        return detail if isinstance(detail, dict) else {}


@dataclass(frozen=True, slots=True)
class LoginEntry:
    time: datetime
    outcome: str
    network: str | None
    device: str | None


@dataclass(frozen=True, slots=True)
class DisclosureEntry:
    time: datetime
    principal: str | None
    recipient: str | None
    purpose: str | None
    categories: tuple[str, ...]
    route: str | None
    action: str


@dataclass(frozen=True, slots=True)
class AccessLog:
    subject: str
    logins: tuple[LoginEntry, ...]
    disclosures: tuple[DisclosureEntry, ...]


def _time(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        time=_time(row.time_us),
        kind=row.kind,
        class_uid=row.class_uid,
        subject=row.subject,
        principal=row.principal,
        document=orjson.loads(row.leaf) if row.leaf is not None else None,
    )


async def search(
    database: Database,
    *,
    subject: str | None = None,
    kinds: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int | None = None,
    limit: int = 100,
    chain: str = "default",
) -> list[AuditRecord]:
    """Events in index order; `kinds` entries ending in `.` or `*` match a prefix."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    t = audit_events
    query = sa.select(t.c.seq, t.c.time_us, t.c.kind, t.c.class_uid, t.c.subject, t.c.principal, t.c.leaf).where(
        t.c.chain == chain
    )
    if subject is not None:
        query = query.where(about_subject(subject, chain, runs=not database.is_postgres))
    if kinds is not None:
        clauses: list[sa.ColumnElement[bool]] = []
        for kind in kinds:
            if kind.endswith(("*", ".")):
                prefix = kind.rstrip("*")
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                clauses.append(t.c.kind.like(escaped + "%", escape="\\"))
            else:
                clauses.append(t.c.kind == kind)
        if not clauses:
            return []
        query = query.where(sa.or_(*clauses))
    if since is not None:
        query = query.where(t.c.time_us >= to_micros(since))
    if until is not None:
        query = query.where(t.c.time_us < to_micros(until))
    if after_seq is not None:
        query = query.where(t.c.seq > after_seq)
    query = query.order_by(t.c.seq).limit(limit)
    async with database.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_record(row) for row in rows]


async def access_log(
    database: Database,
    subject: str,
    *,
    since: datetime | None = None,
    limit: int = 500,
    chain: str = "default",
) -> AccessLog:
    """The subject's own sign-ins and who received which categories of their data, for what."""
    records = await search(
        database,
        subject=subject,
        kinds=["authentication.", "api_activity.data_*"],
        since=since,
        limit=limit,
        chain=chain,
    )
    logins = []
    disclosures = []
    for record in records:
        if record.document is None:
            continue
        detail = record.detail
        if record.kind == "authentication.logon":
            logins.append(
                LoginEntry(
                    time=record.time,
                    outcome=str(record.document.get("status")),
                    network=detail.get("network"),
                    device=detail.get("device"),
                )
            )
        elif record.kind.startswith("api_activity.data_"):
            disclosures.append(
                DisclosureEntry(
                    time=record.time,
                    principal=record.principal,
                    recipient=detail.get("recipient"),
                    purpose=detail.get("purpose"),
                    categories=tuple(detail.get("categories", ())),
                    route=detail.get("route"),
                    action=record.kind.removeprefix("api_activity.data_"),
                )
            )
    return AccessLog(subject=subject, logins=tuple(logins), disclosures=tuple(disclosures))


async def reveal_side_record(database: Database, sealer: SideRecordSealer, ref: str) -> dict[str, str] | None:
    """Forensics: the raw values behind an event's commitments, or None once retention erased them."""
    async with database.connect() as conn:
        row = (
            await conn.execute(
                sa.select(audit_side_records.c.ref, audit_side_records.c.salt, audit_side_records.c.blob).where(
                    audit_side_records.c.ref == ref
                )
            )
        ).first()
    if row is None:
        return None
    return sealer.open(SideRecord(ref=row.ref, salt=bytes(row.salt), blob=bytes(row.blob)))


async def side_record_salt(database: Database, ref: str) -> bytes | None:
    """The commitment salt of a side record (to let a subject check their own commitments)."""
    async with database.connect() as conn:
        salt = (
            await conn.execute(sa.select(audit_side_records.c.salt).where(audit_side_records.c.ref == ref))
        ).scalar_one_or_none()
    return bytes(salt) if salt is not None else None
