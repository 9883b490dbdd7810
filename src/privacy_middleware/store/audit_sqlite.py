"""The audit sequencer's statements on SQLite, run in one call on aiosqlite's own thread.

Through SQLAlchemy each statement of an append is a round trip to aiosqlite's worker thread and
back through the event loop (about eight per batch); on a busy loop every one waits for a turn,
and a strict caller waits for all of them. `driver_thread` hands a plain function the driver's
own `sqlite3` connection inside the caller's transaction, so a whole append is one hop. The SQL
is the same as the SQLAlchemy statements in `store/audit.py` (same tables, same columns).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class RowsInsert:
    """A multi-row INSERT: one statement (one step) for up to `MAX_ROWS_PER_STATEMENT` rows.

    `executemany` steps once per row, and the sqlite3 module releases the GIL around every step:
    while the event loop is busy, each step then waits up to the interpreter's switch interval
    (5 ms) to get the GIL back, and a batch took many times its CPU time to write."""

    table: str
    columns: tuple[str, ...]

    def statement(self, rows: int) -> str:
        return _rows_statement(self.table, self.columns, rows)


@functools.lru_cache(maxsize=512)
def _rows_statement(table: str, columns: tuple[str, ...], rows: int) -> str:
    one = f"({', '.join('?' for _ in columns)})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * rows)}"


MAX_ROWS_PER_STATEMENT = 256

INSERT_SIDE = RowsInsert(audit_side_records.name, SIDE_COLUMNS)
INSERT_EVENTS = RowsInsert(audit_events.name, EVENT_COLUMNS)
INSERT_SUBJECTS = RowsInsert(audit_event_subjects.name, SUBJECT_COLUMNS)
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


_RETURNING = sqlite3.sqlite_version_info >= (3, 35)  # UPDATE ... RETURNING
_TOUCH_AND_READ = _TOUCH + " RETURNING size, frontier, checkpoint_size, checkpoint_us, last_leaf_us"


def lock_chain(db: sqlite3.Connection, chain: str, now_us: int) -> ChainHead:
    """The first statement is a write: it takes the database write lock until the transaction ends."""
    rows = db.execute(_TOUCH_AND_READ, (chain,)).fetchall() if _RETURNING else []
    if not rows:
        if not _RETURNING and db.execute(_TOUCH, (chain,)).rowcount > 0:
            rows = db.execute(_HEAD, (chain,)).fetchall()
        else:
            db.execute(_NEW_CHAIN, (chain, now_us, now_us))
            rows = db.execute(_HEAD, (chain,)).fetchall()
    size, frontier, checkpoint_size, checkpoint_us, last_leaf_us = rows[0]
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


def file_path(url: Any) -> str | None:
    """The file of a SQLite database URL a writer may open its own connections to, else None
    (PostgreSQL, in-memory databases, URLs with options the plain file name would not carry)."""
    if url.get_backend_name() != "sqlite" or url.query:
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return str(database)


def open_connection(
    path: str,
    pragmas: Callable[[Any, Any], None],
    *,
    busy_timeout: float,
    autocheckpoint: bool,
    cache_mb: int = 0,
) -> sqlite3.Connection:
    """A plain connection with the store's pragmas (`Database.sqlite_pragmas`: WAL, its synchronous
    level, foreign keys), then its own busy timeout; `autocheckpoint=False` leaves WAL checkpoints
    to the caller. `cache_mb` (0: SQLite's default, 2 MB) bounds the connection's page cache, which
    SQLite fills only as pages are read."""
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        pragmas(db, None)
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        if not autocheckpoint:
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        if cache_mb:
            db.execute(f"PRAGMA cache_size={-1024 * int(cache_mb)}")  # negative: KiB, not pages
    except BaseException:
        db.close()
        raise
    return db


# A WAL that a backlog made larger than this is cut back to it once it starts over.
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def checkpoint_wal(db: sqlite3.Connection, busy_timeout: float) -> bool:
    """Copy the WAL into the database file and start the WAL over; True once it starts over.

    A PASSIVE checkpoint copies without the write lock, so writers go on meanwhile. But SQLite
    starts a WAL over only when a write begins on a WAL copied to its end, and under steady
    writes one always lands during the copy: the WAL then never starts over and every commit
    extends it (1.3 GB after 15 s of `bench_audit.py`), each a costlier write than the overwrite of
    a page already in the file. So: a first PASSIVE copy (the long one), a second for what was
    committed during the first (a few pages and the syncs, still without the write lock), then
    RESTART, which starts the WAL over at once when nothing more came meanwhile. RESTART holds
    the write lock while it copies and syncs (about 20 ms here when it had pages to copy, which a
    strict caller would wait for), which is why it comes last; and it does not wait: a write or a
    read in progress leaves the restart to the next call."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    db.execute("PRAGMA busy_timeout=0")
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    finally:
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return not busy


def is_busy(exc: BaseException) -> bool:
    """SQLite refused at once because another connection holds the write lock (busy timeout 0)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def insert_many(db: sqlite3.Connection, insert: RowsInsert, rows: Sequence[tuple[object, ...]]) -> None:
    """Insert `rows` with as few statements as SQLite allows (the same rows `executemany` would)."""
    if not rows:
        return
    # SQLite's own bound on parameters (999 before 3.32, 32766 since) caps the rows per statement
    step = max(1, min(MAX_ROWS_PER_STATEMENT, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(insert.columns)))
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        db.execute(insert.statement(len(chunk)), [value for row in chunk for value in row])
