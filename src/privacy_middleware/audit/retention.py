"""Retention: shred raw values early, drop event bodies later, and say so in the log.

Side records (raw IP, username, user agent) go after `side_record_days` (default 30, research
Appendix B, stage S1). Event bodies go after `event_days` (default 180, stage S4): the leaf
bytes are erased but the leaf hash stays, and a `log.retention_purge` leaf listing the purged
index ranges is appended in the same transaction, so an offline verifier can tell an explained
purge from a deletion. Lifecycle leaves (markers, key rotations) are never purged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..store import Database
from ..store.audit import audit_events, audit_side_records
from .events import lifecycle, to_micros
from .log import AuditLog

Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class RetentionReport:
    side_records_erased: int = 0
    events_purged: int = 0
    markers: list[int] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)


def index_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted indices as half-open [from, to) runs."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if ranges and ranges[-1][1] == seq:
            ranges[-1] = (ranges[-1][0], seq + 1)
        else:
            ranges.append((seq, seq + 1))
    return ranges


async def purge(
    database: Database,
    log: AuditLog,
    *,
    side_record_days: int = 30,
    event_days: int = 180,
    now: datetime | None = None,
    progress: Progress | None = None,
    batch_size: int = 1000,
) -> RetentionReport:
    if side_record_days < 0 or event_days < 0 or batch_size < 1:
        raise ValueError("retention periods and batch size must be non-negative / positive")
    now_us = to_micros(now) if now is not None else time.time_ns() // 1000
    report = RetentionReport()
    side_cutoff = now_us - int(timedelta(days=side_record_days).total_seconds()) * 1_000_000
    event_cutoff = now_us - int(timedelta(days=event_days).total_seconds()) * 1_000_000
    s, e = audit_side_records, audit_events

    async with database.connect() as conn:
        side_total = (
            await conn.execute(sa.select(sa.func.count()).select_from(s).where(s.c.created_us < side_cutoff))
        ).scalar_one()
        event_total = (
            await conn.execute(sa.select(sa.func.count()).select_from(e).where(_purgeable(log.chain, event_cutoff)))
        ).scalar_one()

    while True:
        async with database.begin() as conn:
            refs = (
                (await conn.execute(sa.select(s.c.ref).where(s.c.created_us < side_cutoff).limit(batch_size)))
                .scalars()
                .all()
            )
            if not refs:
                break
            await conn.execute(sa.delete(s).where(s.c.ref.in_(refs)))
        report.side_records_erased += len(refs)
        if progress is not None:
            progress("side_records", report.side_records_erased, side_total)

    while True:
        async with database.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(e.c.seq, e.c.uid)
                    .where(_purgeable(log.chain, event_cutoff))
                    .order_by(e.c.seq)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                break
            seqs = [row.seq for row in rows]
            uids = [row.uid for row in rows]
            await conn.execute(
                sa.update(e).where(e.c.chain == log.chain, e.c.seq.in_(seqs)).values(leaf=None, purged_us=now_us)
            )
            await conn.execute(sa.delete(s).where(s.c.event_uid.in_(uids)))
            ranges = index_ranges(seqs)
            marker = lifecycle(
                "retention_purge",
                ranges=[list(r) for r in ranges],
                count=len(seqs),
                before_us=event_cutoff,
                reason="retention",
            )
            result = await log.append_in(database, conn, [log.seal(marker)])
        report.events_purged += len(seqs)
        report.ranges.extend(ranges)
        report.markers.append(result.first_seq)
        if progress is not None:
            progress("events", report.events_purged, event_total)
    return report


def _purgeable(chain: str, cutoff: int) -> sa.ColumnElement[bool]:
    e = audit_events
    return sa.and_(
        e.c.chain == chain,
        e.c.time_us < cutoff,
        e.c.leaf.is_not(None),
        sa.not_(e.c.kind.like("log.%")),
    )
