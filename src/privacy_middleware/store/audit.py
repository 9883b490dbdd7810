"""Audit trail tables and the repository functions the audit package uses.

Times are integer microseconds since the epoch (`*_us`), identical on SQLite and PostgreSQL.
`privacy_audit_events.leaf` holds the canonical leaf bytes; retention sets it to NULL and keeps
`leaf_hash`, so the Merkle tree can always be recomputed. `sealed_us` is the time the sequencer
appended the event's batch (it never goes backwards along the sequence), which is what PostgreSQL
partitions the events by. `privacy_audit_batches` holds one signed seal per appended batch and the
tree's frontier after it (an anchor a verifier can start from once older partitions are dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import metadata

audit_chains = sa.Table(
    "privacy_audit_chains",
    metadata,
    sa.Column("chain", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("frontier", sa.Text, nullable=False),
    sa.Column("checkpoint_size", sa.BigInteger, nullable=False),
    sa.Column("checkpoint_us", sa.BigInteger, nullable=False),
    sa.Column("last_leaf_us", sa.BigInteger, nullable=False),
)

audit_events = sa.Table(
    "privacy_audit_events",
    metadata,
    sa.Column("chain", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("uid", sa.String(36), nullable=False, unique=True),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(80), nullable=False),
    sa.Column("class_uid", sa.Integer, nullable=False),
    sa.Column("subject", sa.String(200)),
    sa.Column("principal", sa.String(200)),
    sa.Column("leaf", sa.LargeBinary),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("purged_us", sa.BigInteger),
    sa.Column("sealed_us", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index(None, "subject", "time_us"),
    sa.Index(None, "kind", "time_us"),
    sa.Index(None, "time_us"),
)

audit_checkpoints = sa.Table(
    "privacy_audit_checkpoints",
    metadata,
    sa.Column("chain", sa.String(64), primary_key=True),
    sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

audit_side_records = sa.Table(
    "privacy_audit_side_records",
    metadata,
    sa.Column("ref", sa.String(32), primary_key=True),
    sa.Column("chain", sa.String(64), nullable=False),
    sa.Column("event_uid", sa.String(36), nullable=False),
    sa.Column("salt", sa.LargeBinary(16), nullable=False),
    sa.Column("blob", sa.LargeBinary, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Index(None, "created_us"),
    sa.Index(None, "event_uid"),
)

audit_signing_keys = sa.Table(
    "privacy_audit_signing_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("public_pem", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

AUDIT_TABLES = (audit_chains, audit_events, audit_checkpoints, audit_side_records, audit_signing_keys)

# One row per appended batch: its signed seal (compact JWS) and the tree frontier after it.
audit_batches = sa.Table(
    "privacy_audit_batches",
    metadata,
    sa.Column("chain", sa.String(64), primary_key=True),
    sa.Column("first_seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tree_size", sa.BigInteger, nullable=False),
    sa.Column("sealed_us", sa.BigInteger, nullable=False),
    sa.Column("frontier", sa.LargeBinary, nullable=False),
    sa.Column("seal", sa.Text, nullable=False),
    sa.Index(None, "chain", "tree_size"),
    sa.Index(None, "sealed_us"),
)
BATCH_COLUMNS = ("chain", "first_seq", "tree_size", "sealed_us", "frontier", "seal")

# One disclosure of many records is one event listing its subjects; this index finds it by subject.
audit_event_subjects = sa.Table(
    "privacy_audit_event_subjects",
    metadata,
    sa.Column("chain", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("subject", sa.String(200), primary_key=True),
    sa.Index(None, "subject", "seq"),
)
SUBJECT_COLUMNS = ("chain", "seq", "subject")


# SQLite: the subject index of the events and of their listed subjects, kept in sorted runs
# (store/audit_subject_runs.py). One row per run; its entries are in `audit_subject_entries`.
audit_subject_runs = sa.Table(
    "privacy_audit_subject_runs",
    metadata,
    sa.Column("chain", sa.String(64), primary_key=True),
    sa.Column("run", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("end_seq", sa.BigInteger, nullable=False),  # the events it indexes: first_seq <= seq < end_seq
    sa.Column("merging_into", sa.BigInteger),  # a source of the merge in progress: the run it goes to
    sa.Column("moved_through", sa.String(200)),  # the merge's target: the last subject moved into it
)

audit_subject_entries = sa.Table(
    "privacy_audit_subject_entries",
    metadata,
    sa.Column("chain", sa.String(64), primary_key=True),
    sa.Column("run", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("subject", sa.String(200), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)


def about_subject(subject: str, chain: str, *, runs: bool = False) -> sa.ColumnElement[bool]:
    """`chain`'s events about `subject`: its own, and disclosures that list it among their subjects.

    `runs` (SQLite): found through the subject runs for the events they index, and by a scan of
    the tail above them (the events the runs do not cover yet)."""
    if runs:
        return sa.and_(audit_events.c.chain == chain, audit_events.c.seq.in_(subject_seqs(chain, subject)))
    listed = sa.select(audit_event_subjects.c.seq).where(
        audit_event_subjects.c.subject == subject, audit_event_subjects.c.chain == chain
    )
    return sa.and_(
        audit_events.c.chain == chain, sa.or_(audit_events.c.subject == subject, audit_events.c.seq.in_(listed))
    )


async def about_subject_in_any_chain(conn: AsyncConnection, subject: str) -> sa.ColumnElement[bool]:
    """Events about `subject` in every chain (`about_subject`, through the subject runs on SQLite)."""
    chains = (await conn.execute(sa.select(audit_chains.c.chain))).scalars().all()
    runs = conn.dialect.name != "postgresql"
    return sa.or_(sa.false(), *(about_subject(subject, chain, runs=runs) for chain in chains))


def subject_seqs(chain: str, subject: str) -> sa.CompoundSelect[tuple[int]]:
    """The sequence numbers of `chain`'s events about `subject` (SQLite, through the subject runs)."""
    r, x, e, s = audit_subject_runs, audit_subject_entries, audit_events, audit_event_subjects
    watermark = sa.select(sa.func.coalesce(sa.func.max(r.c.end_seq), 0)).where(r.c.chain == chain).scalar_subquery()
    indexed = sa.select(x.c.seq).where(
        x.c.chain == chain, x.c.run.in_(sa.select(r.c.run).where(r.c.chain == chain)), x.c.subject == subject
    )
    tail = sa.select(e.c.seq).where(e.c.chain == chain, e.c.seq >= watermark, e.c.subject == subject)
    listed = sa.select(s.c.seq).where(s.c.chain == chain, s.c.seq >= watermark, s.c.subject == subject)
    # none of them correlates with an enclosing query of the events table: each reads on its own
    return sa.union_all(indexed.correlate(None), tail.correlate(None), listed.correlate(None))


@dataclass(slots=True)
class ChainHead:
    chain: str
    size: int
    frontier: list[bytes]
    checkpoint_size: int
    checkpoint_us: int
    last_leaf_us: int


_NEW_CHAIN = (
    "INSERT INTO privacy_audit_chains (chain, size, frontier, checkpoint_size, checkpoint_us,"
    " last_leaf_us) VALUES (:c, 0, '[]', 0, :n, :n) ON CONFLICT (chain) DO NOTHING"
)


async def lock_chain(conn: AsyncConnection, chain: str, *, postgres: bool, now_us: int) -> ChainHead:
    """Become the one sequencer for `chain` until the transaction ends, and read its head.

    PostgreSQL: the head row itself is the lock (`SELECT ... FOR UPDATE`: one round trip; a writer
    that waited reads the head its predecessor committed). SQLite: the first statement is a write,
    which takes the database write lock for the rest of the transaction.
    """
    if postgres:
        query = sa.select(audit_chains).where(audit_chains.c.chain == chain).with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            await conn.execute(sa.text(_NEW_CHAIN), {"c": chain, "n": now_us})
            row = (await conn.execute(query)).one()
    else:
        touched = await conn.execute(
            sa.update(audit_chains).where(audit_chains.c.chain == chain).values(size=audit_chains.c.size)
        )
        if touched.rowcount == 0:
            await conn.execute(sa.text(_NEW_CHAIN), {"c": chain, "n": now_us})
        row = (await conn.execute(sa.select(audit_chains).where(audit_chains.c.chain == chain))).one()
    return _head(chain, row)


def _head(chain: str, row: Any) -> ChainHead:
    return ChainHead(
        chain=chain,
        size=row.size,
        frontier=[bytes.fromhex(h) for h in orjson.loads(row.frontier)],
        checkpoint_size=row.checkpoint_size,
        checkpoint_us=row.checkpoint_us,
        last_leaf_us=row.last_leaf_us,
    )


async def read_head(conn: AsyncConnection, chain: str) -> ChainHead | None:
    row = (await conn.execute(sa.select(audit_chains).where(audit_chains.c.chain == chain))).first()
    return None if row is None else _head(chain, row)


def _head_values(head: ChainHead) -> dict[str, Any]:
    return {
        "size": head.size,
        "frontier": orjson.dumps([h.hex() for h in head.frontier]).decode(),
        "checkpoint_size": head.checkpoint_size,
        "checkpoint_us": head.checkpoint_us,
        "last_leaf_us": head.last_leaf_us,
    }


async def save_head(conn: AsyncConnection, head: ChainHead) -> None:
    await conn.execute(sa.update(audit_chains).where(audit_chains.c.chain == head.chain).values(**_head_values(head)))


_SEAL_AND_HEAD = sa.text(
    "WITH seal AS (INSERT INTO privacy_audit_batches (chain, first_seq, tree_size, sealed_us, frontier, seal)"
    " VALUES (:chain, :first_seq, :tree_size, :sealed_us, :batch_frontier, :seal))"
    " UPDATE privacy_audit_chains SET size = :size, frontier = :frontier, checkpoint_size = :checkpoint_size,"
    " checkpoint_us = :checkpoint_us, last_leaf_us = :last_leaf_us WHERE chain = :chain"
).bindparams(sa.bindparam("batch_frontier", type_=sa.LargeBinary))


async def save_head_and_seal(conn: AsyncConnection, head: ChainHead, seal: dict[str, Any]) -> None:
    """Store the batch seal and the new head: one round trip on PostgreSQL (the lock is held meanwhile)."""
    if conn.dialect.name == "postgresql":
        params = {key: value for key, value in seal.items() if key != "frontier"}
        await conn.execute(_SEAL_AND_HEAD, {**params, "batch_frontier": seal["frontier"], **_head_values(head)})
        return
    await conn.execute(audit_batches.insert().values(**seal))
    await save_head(conn, head)


EVENT_COLUMNS = (
    "chain",
    "seq",
    "uid",
    "time_us",
    "kind",
    "class_uid",
    "subject",
    "principal",
    "leaf",
    "leaf_hash",
    "sealed_us",
)
SIDE_COLUMNS = ("ref", "chain", "event_uid", "salt", "blob", "created_us")


async def insert_rows(conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(table.insert(), list(rows))


async def insert_tuples(
    conn: AsyncConnection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Bulk insert straight through the driver: COPY on PostgreSQL (asyncpg), executemany elsewhere.

    The audit writer appends thousands of rows a second; SQLAlchemy's per-row parameter processing
    was most of its cost. The rows hold only ints, strings and bytes, which need no processing."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        if not driver.is_in_transaction():
            # SQLAlchemy opens the driver's transaction lazily, at its first statement: a COPY that
            # comes first would be committed on its own, outside the caller's transaction (rows of
            # a rolled-back append left behind, and a spooled retry refused as duplicates).
            await conn.exec_driver_sql("SELECT 1")
        await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
        return
    marks = ", ".join("?" if conn.dialect.paramstyle == "qmark" else f"%({c})s" for c in columns)
    if conn.dialect.paramstyle == "qmark":
        await conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", list(rows))
    else:
        await conn.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])


async def existing_uids(conn: AsyncConnection, uids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(uids), 500):
        chunk = uids[start : start + 500]
        rows = await conn.execute(sa.select(audit_events.c.uid).where(audit_events.c.uid.in_(chunk)))
        found.update(rows.scalars())
    return found


async def register_signing_key(conn: AsyncConnection, key_id: str, public_pem: str, now_us: int) -> None:
    """Store a public key once; writers sharing a key file may register it at the same moment."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(audit_signing_keys).values(key_id=key_id, public_pem=public_pem, created_us=now_us)
    await conn.execute(statement.on_conflict_do_nothing(index_elements=["key_id"]))
