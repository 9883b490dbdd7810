"""Policy version history: every distinct policy the middleware enforced, and since when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ..policy.load import policy_digest, policy_document
from ..policy.schema import Policy
from .database import Database
from .tables import policy_versions


async def record_policy_version(db: Database, policy: Policy) -> None:
    digest = policy_digest(policy)
    async with db.begin() as conn:
        exists = await conn.scalar(sa.select(policy_versions.c.id).where(policy_versions.c.digest == digest))
        if exists is None:
            await conn.execute(
                policy_versions.insert().values(
                    version=policy.policy.version,
                    effective_date=policy.policy.effective_date,
                    digest=digest,
                    document=policy_document(policy),
                    first_loaded_at=datetime.now(UTC),
                )
            )


async def policy_history(db: Database) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            sa.select(
                policy_versions.c.version,
                policy_versions.c.effective_date,
                policy_versions.c.digest,
                policy_versions.c.first_loaded_at,
            ).order_by(policy_versions.c.first_loaded_at)
        )
        return [
            {
                "version": r.version,
                "effective_date": r.effective_date.isoformat(),
                "digest": r.digest,
                "enforced_since": r.first_loaded_at.isoformat(),
            }
            for r in rows
        ]
