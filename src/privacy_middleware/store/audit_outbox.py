"""The strict outbox (PostgreSQL): strict audit events committed before they have a place in the chain.

A strict caller waits for one row in this table, not for the chain's sequencer lock. The row holds
the sealed event (its body and its encrypted side record, never a raw personal value), so it is as
safe on disk as the spool. The writer that committed it later appends the event to the chain and
deletes the row in that same transaction; another writer claims rows left older than a bound (their
writer died) with `FOR UPDATE SKIP LOCKED`. Both sides skip rows the other holds, so an event is
appended exactly once and nobody waits for a row lock while holding the chain's lock.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import metadata

audit_strict_outbox = sa.Table(
    "privacy_audit_strict_outbox",
    metadata,
    sa.Column("uid", sa.String(36), primary_key=True),
    sa.Column("chain", sa.String(64), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("record", sa.LargeBinary, nullable=False),  # SealedEvent.to_json(), as JSON bytes
    sa.Index(None, "chain", "created_us"),
)

# The server's clock, for the row's age: instances whose clocks differ agree on it.
_NOW_US = "(extract(epoch from clock_timestamp()) * 1000000)::bigint"

# One statement outside any transaction: one round trip, committed when it returns.
INSERT = f"INSERT INTO privacy_audit_strict_outbox (uid, chain, created_us, record) VALUES ($1, $2, {_NOW_US}, $3)"

_UIDS = sa.bindparam("uids", type_=postgresql.ARRAY(sa.String))

_TAKE = sa.text(
    "DELETE FROM privacy_audit_strict_outbox WHERE uid IN (SELECT uid FROM privacy_audit_strict_outbox"
    " WHERE uid = ANY(:uids) FOR UPDATE SKIP LOCKED) RETURNING uid"
).bindparams(_UIDS)

_CLAIM = sa.text(
    "SELECT uid, record FROM privacy_audit_strict_outbox WHERE chain = :chain"
    f" AND created_us <= {_NOW_US} - :age_us ORDER BY created_us LIMIT :limit FOR UPDATE SKIP LOCKED"
)

_DELETE = sa.text("DELETE FROM privacy_audit_strict_outbox WHERE uid = ANY(:uids)").bindparams(_UIDS)


async def take(conn: AsyncConnection, uids: Collection[str]) -> set[str]:
    """Delete the rows of `uids` that nobody else holds, in the caller's transaction: the events
    returned are the caller's to append in it (a row held by a claimer is the claimer's)."""
    if not uids:
        return set()
    rows = await conn.execute(_TAKE, {"uids": list(uids)})
    return set(rows.scalars())


async def claim(conn: AsyncConnection, chain: str, age_us: int, limit: int) -> list[tuple[str, bytes]]:
    """Lock up to `limit` rows of `chain` at least `age_us` old that nobody holds (oldest first)."""
    rows = await conn.execute(_CLAIM, {"chain": chain, "age_us": age_us, "limit": limit})
    return [(uid, bytes(record)) for uid, record in rows]


async def delete(conn: AsyncConnection, uids: Collection[str]) -> None:
    if uids:
        await conn.execute(_DELETE, {"uids": list(uids)})


async def pending(conn: AsyncConnection, chain: str) -> int:
    """How many events of `chain` wait in the outbox (not yet in the chain)."""
    query = sa.select(sa.func.count()).select_from(audit_strict_outbox).where(audit_strict_outbox.c.chain == chain)
    return int((await conn.execute(query)).scalar_one())
