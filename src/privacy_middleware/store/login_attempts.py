"""Login-attempt counters in the store, for several instances without Redis.

Keys are the guard's keyed pseudonyms (never a username or address). `expires_at` is a Unix time;
a row whose time has passed counts as absent. The spray set's members live in their own table and
share the expiry of the spray key's counter row.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import Database
from .tables import metadata

login_counters = sa.Table(
    "privacy_login_counters",
    metadata,
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

login_counter_members = sa.Table(
    "privacy_login_counter_members",
    metadata,
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("member", sa.String(80), primary_key=True),
)


def _insert(db: Database, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    return postgresql.insert(table) if db.is_postgres else sqlite.insert(table)


async def lock_counters(db: Database, conn: AsyncConnection, keys: Sequence[str]) -> dict[str, tuple[int, float]]:
    """Create missing rows and lock all of them (in key order, so two attempts never deadlock).

    On PostgreSQL the rows are locked with FOR UPDATE; on SQLite the first write takes the
    database's single write lock, which serialises the whole transaction.
    """
    ordered = sorted(set(keys))
    await conn.execute(
        _insert(db, login_counters)
        .values([{"key": k, "value": 0, "expires_at": 0.0} for k in ordered])
        .on_conflict_do_nothing()
    )
    query = sa.select(login_counters).where(login_counters.c.key.in_(ordered)).order_by(login_counters.c.key)
    if db.is_postgres:
        query = query.with_for_update()
    rows = (await conn.execute(query)).all()
    return {row.key: (row.value, row.expires_at) for row in rows}


async def write_counters(db: Database, conn: AsyncConnection, values: dict[str, tuple[int, float]]) -> None:
    """Upsert: a row purged as expired while this transaction ran is written back, not lost."""
    for key, (value, expires) in sorted(values.items()):
        insert = _insert(db, login_counters).values(key=key, value=value, expires_at=expires)
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=[login_counters.c.key], set_={"value": value, "expires_at": expires}
            )
        )


async def read_members(conn: AsyncConnection, key: str) -> set[str]:
    query = sa.select(login_counter_members.c.member).where(login_counter_members.c.key == key)
    return set((await conn.execute(query)).scalars())


async def write_members(db: Database, conn: AsyncConnection, key: str, members: set[str], before: set[str]) -> None:
    gone = before - members
    if gone:
        await conn.execute(
            login_counter_members.delete().where(
                login_counter_members.c.key == key, login_counter_members.c.member.in_(sorted(gone))
            )
        )
    added = members - before
    if added:
        await conn.execute(
            _insert(db, login_counter_members)
            .values([{"key": key, "member": m} for m in sorted(added)])
            .on_conflict_do_nothing()
        )


async def purge_expired(db: Database, now: float) -> int:
    """Forget counters that expired (background maintenance); returns rows removed."""
    async with db.begin() as conn:
        expired = sa.select(login_counters.c.key).where(login_counters.c.expires_at < now)
        await conn.execute(login_counter_members.delete().where(login_counter_members.c.key.in_(expired)))
        result = await conn.execute(login_counters.delete().where(login_counters.c.expires_at < now))
    return int(result.rowcount or 0)
