"""Breach-response tables: canary records (by keyed hash only) and access suspensions.

A canary row never holds the decoy's id in clear: `digest` is HMAC-SHA256(canary key, kind:id), so
the table alone does not tell an intruder which records are traps. Suspensions are kept until an
officer lifts them; a lifted row stays as the record of who lifted it and when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import metadata

canaries = sa.Table(
    "privacy_canaries",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("label", sa.String(120), nullable=False),
    sa.Column("batch", sa.String(40), nullable=False),
    sa.Column("planted_us", sa.BigInteger, nullable=False),
    sa.Column("retired_us", sa.BigInteger),
    sa.Index(None, "batch"),
)

suspensions = sa.Table(
    "privacy_suspensions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("target_kind", sa.String(20), nullable=False),  # principal | recipient
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("finding_uid", sa.String(36)),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("since_us", sa.BigInteger, nullable=False),
    sa.Column("lifted_us", sa.BigInteger),
    sa.Column("lifted_by", sa.String(200)),
    sa.Index(None, "target_kind", "target", "lifted_us"),
)

BREACH_TABLES = (canaries, suspensions)


@dataclass(frozen=True, slots=True)
class CanaryRow:
    digest: str
    kind: str
    label: str
    batch: str
    planted_us: int
    retired_us: int | None


@dataclass(frozen=True, slots=True)
class SuspensionRow:
    id: int
    target_kind: str
    target: str
    finding_uid: str | None
    reason: str
    since_us: int
    lifted_us: int | None
    lifted_by: str | None


async def insert_canaries(conn: AsyncConnection, rows: Sequence[CanaryRow]) -> None:
    if rows:
        await conn.execute(
            canaries.insert(),
            [
                {
                    "digest": r.digest,
                    "kind": r.kind,
                    "label": r.label,
                    "batch": r.batch,
                    "planted_us": r.planted_us,
                    "retired_us": r.retired_us,
                }
                for r in rows
            ],
        )


async def read_canaries(conn: AsyncConnection, *, active_only: bool) -> list[CanaryRow]:
    query = sa.select(canaries).order_by(canaries.c.planted_us, canaries.c.digest)
    if active_only:
        query = query.where(canaries.c.retired_us.is_(None))
    return [CanaryRow(**row._mapping) for row in (await conn.execute(query)).all()]


async def retire_canaries(conn: AsyncConnection, digests: Sequence[str], now_us: int) -> int:
    if not digests:
        return 0
    result = await conn.execute(
        canaries.update()
        .where(canaries.c.digest.in_(list(digests)), canaries.c.retired_us.is_(None))
        .values(retired_us=now_us)
    )
    return int(result.rowcount or 0)


async def insert_suspension(
    conn: AsyncConnection, target_kind: str, target: str, *, finding_uid: str | None, reason: str, now_us: int
) -> int | None:
    """A new suspension, or None when the target is already suspended (one incident, one row)."""
    existing = await conn.scalar(
        sa.select(suspensions.c.id).where(
            suspensions.c.target_kind == target_kind,
            suspensions.c.target == target,
            suspensions.c.lifted_us.is_(None),
        )
    )
    if existing is not None:
        return None
    result = await conn.execute(
        suspensions.insert().values(
            target_kind=target_kind, target=target, finding_uid=finding_uid, reason=reason[:200], since_us=now_us
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else None


async def read_suspensions(conn: AsyncConnection, *, active_only: bool) -> list[SuspensionRow]:
    query = sa.select(suspensions).order_by(suspensions.c.id)
    if active_only:
        query = query.where(suspensions.c.lifted_us.is_(None))
    return [SuspensionRow(**row._mapping) for row in (await conn.execute(query)).all()]


async def lift_suspension(
    conn: AsyncConnection, target_kind: str, target: str, *, lifted_by: str, now_us: int
) -> list[SuspensionRow]:
    """Lift every active suspension of the target; returns the rows lifted."""
    active = [
        row
        for row in await read_suspensions(conn, active_only=True)
        if row.target_kind == target_kind and row.target == target
    ]
    if active:
        await conn.execute(
            suspensions.update()
            .where(suspensions.c.id.in_([row.id for row in active]))
            .values(lifted_us=now_us, lifted_by=lifted_by[:200])
        )
    return active
