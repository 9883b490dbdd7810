"""A store as an older release left it: the migrations applied up to (not including) a version."""

from __future__ import annotations

from datetime import UTC, datetime

from privacy_middleware.store import Database
from privacy_middleware.store.migrations import available
from privacy_middleware.store.tables import schema_version


async def migrate_before(database: Database, version: int) -> None:
    """Apply and record every migration below `version`, as `Database.upgrade` would have then."""
    async with database.begin() as conn:
        await conn.run_sync(schema_version.create, checkfirst=True)
        for module in available():
            if version > module.VERSION:
                await conn.run_sync(module.upgrade)
                await conn.execute(
                    schema_version.insert().values(
                        version=module.VERSION, description=module.DESCRIPTION, applied_at=datetime.now(UTC)
                    )
                )
