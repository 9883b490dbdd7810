"""Time partitions of the audit events on PostgreSQL, so retention drops whole partitions.

`privacy_audit_events` is range-partitioned by `sealed_us` (the time the sequencer appended the
event's batch, non-decreasing along each chain), one partition per period, named after its start
(`privacy_audit_events_p20261203t000000`). The events a store held before it was partitioned stay in
`privacy_audit_events_legacy`, attached as the partition before the first period. Partitions are
created ahead of time by the writers (a short transaction of its own, when fewer than one period is
left) and dropped by retention once their whole range is older than the retention period. An anchor
(the tree's frontier at the first index kept) is kept for every drop, so the remaining log still
verifies against its signed heads. SQLite keeps one table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import metadata

PARENT = "privacy_audit_events"
PREFIX = "privacy_audit_events_p"
LEGACY = "privacy_audit_events_legacy"

# The tree's frontier where the log now starts, kept when retention drops the partitions before it.
audit_anchors = sa.Table(
    "privacy_audit_anchors",
    metadata,
    sa.Column("chain", sa.String(64), primary_key=True),
    sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("frontier", sa.LargeBinary, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

_PARTITION_LOCK = 0x50524950  # "PRIP": creating audit partitions
_BOUND = re.compile(r"FOR VALUES FROM \((MINVALUE|'?-?\d+'?)\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    low: int | None  # None: from MINVALUE (the partition holding the events from before partitioning)
    high: int


def partition_name(low_us: int) -> str:
    return PREFIX + datetime.fromtimestamp(low_us / 1_000_000, UTC).strftime("%Y%m%dt%H%M%S")


def period_start(time_us: int, period_us: int) -> int:
    return time_us - time_us % period_us


async def is_partitioned(conn: AsyncConnection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = await conn.scalar(sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": PARENT})
    return bool(kind == "p")


async def partitions(conn: AsyncConnection) -> list[Partition]:
    """The partitions of the events table, oldest first."""
    rows = await conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": PARENT},
    )
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match is None:
            continue  # a DEFAULT partition (never created here) has no range
        low = None if match.group(1) == "MINVALUE" else int(match.group(1).strip("'"))
        found.append(Partition(name, low, int(match.group(2))))
    found.sort(key=lambda p: p.high)
    return found


async def ensure_partitions(conn: AsyncConnection, now_us: int, period_us: int, ahead: int = 2) -> int:
    """Create the partitions up to `ahead` periods after the current one; the time they reach.

    After a long pause one partition covers the whole gap up to the current period."""
    if period_us <= 0 or ahead < 0:
        raise ValueError("the partition period must be positive and ahead non-negative")
    # several writers start together: one creates, the others then find the partitions there
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PARTITION_LOCK})
    existing = await partitions(conn)
    current = period_start(now_us, period_us)
    target = current + (ahead + 1) * period_us
    start = existing[-1].high if existing else current
    if start < current:
        await _create(conn, start, current)
        start = current
    while start < target:
        await _create(conn, start, start + period_us)
        start += period_us
    return max(start, existing[-1].high if existing else start)


async def _create(conn: AsyncConnection, low: int, high: int) -> None:
    await conn.execute(
        sa.text(
            f"CREATE TABLE IF NOT EXISTS {partition_name(low)} PARTITION OF {PARENT}"
            f" FOR VALUES FROM ({int(low)}) TO ({int(high)})"
        )
    )


async def drop_partition(conn: AsyncConnection, partition: Partition) -> None:
    if not partition.name.startswith((PREFIX, LEGACY)):
        raise ValueError("not an audit events partition")
    await conn.execute(sa.text(f'DROP TABLE "{partition.name}"'))
