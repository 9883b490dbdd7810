"""Policy version history: every distinct policy the middleware enforced, and since when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..policy.load import policy_digest, policy_document
from ..policy.schema import Policy
from .database import Database
from .tables import policy_versions


async def record_policy_version(db: Database, policy: Policy) -> None:
    """Record the policy once. Workers and instances start together and may insert the same policy
    at the same moment: the loser's insert is a no-op, never a failed start (uvicorn stops every
    worker of a multi-process server when one fails to start)."""
    digest = policy_digest(policy)
    async with db.begin() as conn:
        exists = await conn.scalar(sa.select(policy_versions.c.id).where(policy_versions.c.digest == digest))
        if exists is None:
            insert = postgresql.insert if db.is_postgres else sqlite.insert
            statement = insert(policy_versions).values(
                version=policy.policy.version,
                effective_date=policy.policy.effective_date,
                digest=digest,
                document=policy_document(policy),
                first_loaded_at=datetime.now(UTC),
            )
            await conn.execute(statement.on_conflict_do_nothing(index_elements=["digest"]))


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
