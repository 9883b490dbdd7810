"""Retention: shred raw values early, drop event bodies later, and say so in the log.

Side records (raw IP, username, user agent) go after `side_record_days` (default 30, research
Appendix B, stage S1). Event bodies go after `event_days` (default 180, stage S4): the leaf
bytes are erased but the leaf hash stays, and a `log.retention_purge` leaf listing the purged
index ranges is appended in the same transaction, so an offline verifier can tell an explained
purge from a deletion. The purge also forgets who the event was about and who acted (its subject
and principal columns, and its entries in the subject index): what stays, the index, kind, time
and leaf hash, links the event to no one. Lifecycle leaves (markers, key rotations) are never purged.

On PostgreSQL the events are partitioned by sealing time: a partition whose whole range is older
than the retention period is dropped at once (no row is rewritten). The drop keeps an anchor, the
tree's frontier at the first index kept (taken from the seal of the last batch dropped), and a
`log.retention_drop` leaf naming the dropped range and that anchor, in the same transaction, so the
rest of the log verifies on its own. Dropped partitions take their lifecycle leaves with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..store import Database
from ..store.audit import (
    audit_batches,
    audit_event_subjects,
    audit_events,
    audit_side_records,
    audit_subject_entries,
    audit_subject_runs,
    lock_chain,
)
from ..store.audit_partitions import audit_anchors, drop_partition, is_partitioned, partitions
from .events import lifecycle, to_micros
from .log import AuditLog
from .merkle import Frontier

Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class RetentionReport:
    side_records_erased: int = 0
    events_purged: int = 0
    markers: list[int] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    events_dropped: int = 0


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

    await drop_expired_partitions(database, log, event_cutoff, report)
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
            pairs = await _subject_pairs(conn, log.chain, seqs)
            await conn.execute(
                sa.update(e)
                .where(e.c.chain == log.chain, e.c.seq.in_(seqs))
                .values(leaf=None, purged_us=now_us, subject=None, principal=None)
            )
            await conn.execute(sa.delete(s).where(s.c.event_uid.in_(uids)))
            await _forget_subjects(conn, log.chain, seqs, pairs, runs=not database.is_postgres)
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


async def _subject_pairs(conn: AsyncConnection, chain: str, seqs: list[int]) -> list[tuple[str, int]]:
    """The (subject, seq) pairs the subject index holds for these events: each event's own subject
    and the subjects a disclosure lists."""
    e, listed = audit_events, audit_event_subjects
    own = sa.select(e.c.subject, e.c.seq).where(e.c.chain == chain, e.c.seq.in_(seqs), e.c.subject.is_not(None))
    others = sa.select(listed.c.subject, listed.c.seq).where(listed.c.chain == chain, listed.c.seq.in_(seqs))
    return [(row[0], row[1]) for row in await conn.execute(sa.union(own, others))]


async def _forget_subjects(
    conn: AsyncConnection, chain: str, seqs: list[int], pairs: list[tuple[str, int]], *, runs: bool
) -> None:
    """Drop purged events from the subject index: the subjects a disclosure lists and, on SQLite,
    their entries in the sorted runs (looked up by key in each run whose range holds the event: the
    source and the target of a merge under way, at most; the entries have no index by event)."""
    listed = audit_event_subjects
    await conn.execute(sa.delete(listed).where(listed.c.chain == chain, listed.c.seq.in_(seqs)))
    if not runs or not pairs:
        return
    r, x = audit_subject_runs, audit_subject_entries
    catalog = (await conn.execute(sa.select(r.c.run, r.c.first_seq, r.c.end_seq).where(r.c.chain == chain))).all()
    keys = [
        {"r": run, "s": subject, "q": seq}
        for subject, seq in pairs
        for run, first, end in catalog
        if first <= seq < end
    ]
    if keys:
        await conn.execute(
            sa.delete(x).where(
                x.c.chain == chain,
                x.c.run == sa.bindparam("r"),
                x.c.subject == sa.bindparam("s"),
                x.c.seq == sa.bindparam("q"),
            ),
            keys,
        )


def _purgeable(chain: str, cutoff: int) -> sa.ColumnElement[bool]:
    e = audit_events
    return sa.and_(
        e.c.chain == chain,
        e.c.time_us < cutoff,
        e.c.leaf.is_not(None),
        sa.not_(e.c.kind.like("log.%")),
    )


async def drop_expired_partitions(database: Database, log: AuditLog, cutoff_us: int, report: RetentionReport) -> None:
    """PostgreSQL: drop every events partition whose whole range is older than `cutoff_us` (and
    than now: the partition being written is never dropped), anchoring the log where it now starts."""
    if not database.is_postgres:
        return
    await log.prepare(database)  # the marker leaf needs the current partition
    now_us = time.time_ns() // 1000
    async with database.begin() as conn:
        if not await is_partitioned(conn):
            return
        expired = [p for p in await partitions(conn) if p.high <= min(cutoff_us, now_us)]
        if not expired:
            return
        boundary = expired[-1].high
        await lock_chain(conn, log.chain, postgres=True, now_us=now_us)  # no append while the log is cut
        start, anchor = await _anchor(conn, log.chain, boundary, now_us)
        e, s = audit_events, audit_side_records
        dropped_uids = sa.select(e.c.uid).where(e.c.sealed_us < boundary)
        await conn.execute(sa.delete(s).where(s.c.event_uid.in_(dropped_uids)))
        await conn.execute(
            sa.delete(audit_event_subjects).where(
                audit_event_subjects.c.chain == log.chain, audit_event_subjects.c.seq < anchor
            )
        )
        for partition in expired:
            await drop_partition(conn, partition)
        marker = lifecycle(
            "retention_drop",
            partitions=[p.name for p in expired],
            dropped=[start, anchor],
            anchor=anchor,
            before_us=boundary,
            reason="retention",
        )
        result = await log.append_in(database, conn, [log.seal(marker)])
    report.partitions_dropped.extend(p.name for p in expired)
    report.events_dropped += anchor - start
    report.markers.append(result.first_seq)


async def _anchor(conn: AsyncConnection, chain: str, boundary: int, now_us: int) -> tuple[int, int]:
    """(first index still held, first index kept after the drop); the anchor at the latter is stored.

    The frontier comes from the seal of the last batch sealed before `boundary`; leaves sealed before
    batches were (events of a store that was upgraded) are folded in from the previous anchor."""
    e, b, a = audit_events, audit_batches, audit_anchors
    start = await conn.scalar(sa.select(sa.func.min(e.c.seq)).where(e.c.chain == chain)) or 0
    kept = await conn.scalar(sa.select(sa.func.min(e.c.seq)).where(e.c.chain == chain, e.c.sealed_us >= boundary))
    if kept is None:  # nothing newer than the boundary: the log continues at its head
        kept = await conn.scalar(sa.select(sa.func.max(e.c.seq) + 1).where(e.c.chain == chain)) or start
    nodes = await conn.scalar(sa.select(b.c.frontier).where(b.c.chain == chain, b.c.tree_size == kept))
    if nodes is None:
        previous = (
            await conn.execute(
                sa.select(a.c.tree_size, a.c.frontier)
                .where(a.c.chain == chain, a.c.tree_size <= kept)
                .order_by(a.c.tree_size.desc())
                .limit(1)
            )
        ).first()
        frontier = Frontier() if previous is None else Frontier(previous[0], _split(bytes(previous[1])))
        hashes = await conn.execute(
            sa.select(e.c.leaf_hash)
            .where(e.c.chain == chain, e.c.seq >= frontier.size, e.c.seq < kept)
            .order_by(e.c.seq)
        )
        frontier.extend(bytes(h) for (h,) in hashes)
        if frontier.size != kept:
            raise RuntimeError("the audit log has a gap before the partitions to drop; nothing was dropped")
        nodes = b"".join(frontier.nodes)
    exists = await conn.scalar(sa.select(a.c.tree_size).where(a.c.chain == chain, a.c.tree_size == kept))
    if exists is None:
        await conn.execute(sa.insert(a).values(chain=chain, tree_size=kept, frontier=bytes(nodes), created_us=now_us))
    return start, kept


def _split(nodes: bytes) -> list[bytes]:
    return [nodes[i : i + 32] for i in range(0, len(nodes), 32)]
