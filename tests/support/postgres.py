"""A throw-away PostgreSQL database per test (created here, dropped afterwards)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

POSTGRES_ADMIN_DSN = os.environ.get("PRIVACY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create a uniquely named PostgreSQL database, yield its async URL, drop it afterwards."""
    name = f"pm_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def cut_off(url: str) -> None:
    """A real outage of one test database: refuse new connections and end the existing ones."""
    name = database_name(url)
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()


async def restore(url: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'ALTER DATABASE "{database_name(url)}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def lock_waiters(conn: asyncpg.Connection, seconds: float = 2.0) -> int:
    """How many backends of `conn`'s database wait for a lock, once one does (or `seconds` passed)."""
    waiting = 0
    for _ in range(round(seconds / 0.01)):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        if waiting:
            break
        await asyncio.sleep(0.01)
    return int(waiting)
