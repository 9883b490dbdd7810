"""The audit sequencer's statements on SQLite, run in one call on aiosqlite's own thread.

Through SQLAlchemy each statement of an append is a round trip to aiosqlite's worker thread and
back through the event loop (about eight per batch); on a busy loop every one waits for a turn,
and a strict caller waits for all of them. `driver_thread` hands a plain function the driver's
own `sqlite3` connection inside the caller's transaction, so a whole append is one hop. The SQL
is the same as the SQLAlchemy statements in `store/audit.py` (same tables, same columns).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from .audit import (
    BATCH_COLUMNS,
    EVENT_COLUMNS,
    SIDE_COLUMNS,
    SUBJECT_COLUMNS,
    ChainHead,
    audit_batches,
    audit_chains,
    audit_checkpoints,
    audit_event_subjects,
    audit_events,
    audit_side_records,
    audit_signing_keys,
)

T = TypeVar("T")
Runner = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]


def _insert(table_name: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table_name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


INSERT_SIDE = _insert(audit_side_records.name, SIDE_COLUMNS)
INSERT_EVENTS = _insert(audit_events.name, EVENT_COLUMNS)
INSERT_SUBJECTS = _insert(audit_event_subjects.name, SUBJECT_COLUMNS)
INSERT_BATCH = _insert(audit_batches.name, BATCH_COLUMNS)
INSERT_CHECKPOINT = _insert(audit_checkpoints.name, ("chain", "tree_size", "root_hash", "time_us", "key_id", "note"))
_TOUCH = f"UPDATE {audit_chains.name} SET size = size WHERE chain = ?"
_NEW_CHAIN = (
    f"INSERT INTO {audit_chains.name} (chain, size, frontier, checkpoint_size, checkpoint_us, last_leaf_us)"
    " VALUES (?, 0, '[]', 0, ?, ?) ON CONFLICT (chain) DO NOTHING"
)
_HEAD = f"SELECT size, frontier, checkpoint_size, checkpoint_us, last_leaf_us FROM {audit_chains.name} WHERE chain = ?"
_SAVE_HEAD = (
    f"UPDATE {audit_chains.name} SET size = ?, frontier = ?, checkpoint_size = ?, checkpoint_us = ?,"
    " last_leaf_us = ? WHERE chain = ?"
)
_INSERT_KEY = (
    _insert(audit_signing_keys.name, ("key_id", "public_pem", "created_us")) + " ON CONFLICT (key_id) DO NOTHING"
)


async def driver_thread(conn: AsyncConnection) -> Runner[Any] | None:
    """A runner for plain functions on the aiosqlite connection's thread, in `conn`'s transaction.

    None when `conn` is not an open aiosqlite connection (the caller then uses SQLAlchemy)."""
    if conn.dialect.name != "sqlite" or conn.dialect.driver != "aiosqlite":
        return None
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    execute = getattr(driver, "_execute", None)
    sync = getattr(driver, "_connection", None)
    if execute is None or not isinstance(sync, sqlite3.Connection) or not getattr(driver, "_running", False):
        return None

    async def run(fn: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await execute(fn, sync)
        return result

    return run


def lock_chain(db: sqlite3.Connection, chain: str, now_us: int) -> ChainHead:
    """The first statement is a write: it takes the database write lock until the transaction ends."""
    if db.execute(_TOUCH, (chain,)).rowcount == 0:
        db.execute(_NEW_CHAIN, (chain, now_us, now_us))
    size, frontier, checkpoint_size, checkpoint_us, last_leaf_us = db.execute(_HEAD, (chain,)).fetchone()
    return ChainHead(
        chain=chain,
        size=size,
        frontier=[bytes.fromhex(h) for h in orjson.loads(frontier)],
        checkpoint_size=checkpoint_size,
        checkpoint_us=checkpoint_us,
        last_leaf_us=last_leaf_us,
    )


def save_head(db: sqlite3.Connection, head: ChainHead) -> None:
    frontier = orjson.dumps([h.hex() for h in head.frontier]).decode()
    db.execute(
        _SAVE_HEAD,
        (head.size, frontier, head.checkpoint_size, head.checkpoint_us, head.last_leaf_us, head.chain),
    )


def register_signing_key(db: sqlite3.Connection, key_id: str, public_pem: str, now_us: int) -> None:
    """Store a public key once (as store.audit.register_signing_key does through SQLAlchemy)."""
    db.execute(_INSERT_KEY, (key_id, public_pem, now_us))


def insert_many(db: sqlite3.Connection, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
    if rows:
        db.executemany(statement, rows)
