"""The erasure epoch: a per-tenant counter bumped in the same transaction that destroys a subject's
keys, with one log row per erasure (the subject hash, never the subject).

The counter row is locked by the erasing transaction until it commits, so epochs become visible in
order: an instance that has seen epoch N has seen every erasure up to N, and one cheap read of the
counter tells it whether anything happened since.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import metadata

erasure_epochs = sa.Table(
    "privacy_erasure_epochs",
    metadata,
    sa.Column("tenant", sa.String(200), primary_key=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
)

erasure_log = sa.Table(
    "privacy_erasure_log",
    metadata,
    sa.Column("tenant", sa.String(200), primary_key=True),
    sa.Column("epoch", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("subject_hash", sa.String(128), nullable=False),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
)


async def record_erasure(conn: AsyncConnection, tenant: str, subject_hash: str) -> int:
    """Bump the tenant's epoch and log the erasure (call inside the erasing transaction)."""
    bumped = await conn.execute(
        erasure_epochs.update()
        .where(erasure_epochs.c.tenant == tenant)
        .values(epoch=erasure_epochs.c.epoch + 1)
        .returning(erasure_epochs.c.epoch)
    )
    epoch = bumped.scalar()
    if epoch is None:
        await conn.execute(erasure_epochs.insert().values(tenant=tenant, epoch=1))
        epoch = 1
    await conn.execute(
        erasure_log.insert().values(tenant=tenant, epoch=epoch, subject_hash=subject_hash, erased_at=datetime.now(UTC))
    )
    return int(epoch)


async def current_epoch(conn: AsyncConnection, tenant: str) -> int:
    found = await conn.execute(sa.select(erasure_epochs.c.epoch).where(erasure_epochs.c.tenant == tenant))
    return int(found.scalar() or 0)


async def erasures_since(conn: AsyncConnection, tenant: str, epoch: int) -> list[tuple[int, str]]:
    rows = await conn.execute(
        sa.select(erasure_log.c.epoch, erasure_log.c.subject_hash)
        .where(erasure_log.c.tenant == tenant, erasure_log.c.epoch > epoch)
        .order_by(erasure_log.c.epoch)
    )
    return [(int(r.epoch), str(r.subject_hash)) for r in rows]
