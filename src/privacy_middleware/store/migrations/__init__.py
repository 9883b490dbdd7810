"""Versioned schema migrations, applied at start-up or by `privacy-middleware db upgrade`.

Each module `mNNNN_name.py` defines `VERSION`, `DESCRIPTION` and `upgrade(conn)` (a sync
SQLAlchemy Connection, run through `run_sync`). Versions are applied in order, once; on
PostgreSQL an advisory lock makes concurrent starts of several instances safe.
"""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..tables import schema_version

if TYPE_CHECKING:
    from ..database import Database

MIGRATION_LOCK_ID = 0x50524956  # "PRIV"


def available() -> list[ModuleType]:
    modules = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("m") and info.name[1:5].isdigit():
            modules.append(importlib.import_module(f"{__name__}.{info.name}"))
    modules.sort(key=lambda m: m.VERSION)
    versions = [m.VERSION for m in modules]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return modules


def _applied(conn: sa.Connection) -> set[int]:
    schema_version.create(conn, checkfirst=True)
    return set(conn.execute(sa.select(schema_version.c.version)).scalars())


async def current_version(db: Database) -> int:
    async with db.begin() as conn:
        applied = await conn.run_sync(_applied)
    return max(applied, default=0)


async def upgrade(db: Database) -> list[int]:
    done: list[int] = []
    async with db.begin() as conn:
        if db.is_postgres:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
        elif db.dialect == "sqlite":
            # The write lock first, so workers starting together on one file migrate one after the
            # other (the second waits, then finds everything applied) instead of racing to CREATE.
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        applied = await conn.run_sync(_applied)
        for module in available():
            if module.VERSION in applied:
                continue
            await conn.run_sync(module.upgrade)
            await conn.execute(
                schema_version.insert().values(
                    version=module.VERSION, description=module.DESCRIPTION, applied_at=datetime.now(UTC)
                )
            )
            done.append(module.VERSION)
    return done
