"""Webhook deliveries already accepted, so a platform's retry or duplicate is ignored durably.

A delivery can carry several ids (Shopify documents both `X-Shopify-Webhook-Id` and
`X-Shopify-Event-Id`); it is a duplicate when any of them was seen before. A claim is released
when handing the delivery on failed, so the platform's retry is processed instead of dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .database import Database
from .tables import metadata

webhook_deliveries = sa.Table(
    "privacy_webhook_deliveries",
    metadata,
    sa.Column("platform", sa.String(32), primary_key=True),
    sa.Column("delivery_id", sa.String(200), primary_key=True),
    sa.Column("topic", sa.String(100), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
)


class _Duplicate(Exception):
    pass


def _insert_ignoring_conflict(db: Database, values: dict[str, object]) -> sa.Executable:
    if db.is_postgres:
        return postgresql.insert(webhook_deliveries).values(**values).on_conflict_do_nothing()
    return sqlite.insert(webhook_deliveries).values(**values).on_conflict_do_nothing()


async def claim_delivery(db: Database, platform: str, delivery_ids: Sequence[str], topic: str) -> bool:
    """Record the delivery; False when any of its ids was already recorded (a duplicate)."""
    if not delivery_ids:
        raise ValueError("a delivery needs at least one id")
    now = datetime.now(UTC)
    try:
        async with db.begin() as conn:
            for delivery_id in dict.fromkeys(delivery_ids):
                result = await conn.execute(
                    _insert_ignoring_conflict(
                        db,
                        {
                            "platform": platform,
                            "delivery_id": delivery_id[:200],
                            "topic": topic[:100],
                            "received_at": now,
                        },
                    )
                )
                if result.rowcount == 0:
                    raise _Duplicate  # rolls back the ids inserted so far
    except _Duplicate:
        return False
    return True


async def release_delivery(db: Database, platform: str, delivery_ids: Sequence[str]) -> None:
    """Forget a claim whose hand-over failed, so the platform's retry is accepted."""
    async with db.begin() as conn:
        await conn.execute(
            webhook_deliveries.delete().where(
                webhook_deliveries.c.platform == platform,
                webhook_deliveries.c.delivery_id.in_([d[:200] for d in delivery_ids]),
            )
        )


async def prune_deliveries(db: Database, before: datetime) -> int:
    """Drop records older than any retry window (Shopify retries for 4 hours); returns the count."""
    async with db.begin() as conn:
        result = await conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.received_at < before))
        return int(result.rowcount)
