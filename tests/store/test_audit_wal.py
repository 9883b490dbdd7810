"""The audit writer's WAL checkpoint under steady writes: the WAL starts over instead of growing.

SQLite starts a WAL over only when a write begins on a WAL copied to its end. A PASSIVE checkpoint
does not stop writers, so with another connection committing every millisecond one commit lands
during nearly every copy, and with PASSIVE alone the WAL grew by every round's pages.
"""

import sqlite3
import struct
import threading
from pathlib import Path

from privacy_middleware.store import Database, audit_sqlite

ROUNDS = 30


def _wal_restarts(wal: Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time the WAL starts over."""
    with wal.open("rb") as f:
        header = f.read(16)
    return int(struct.unpack(">I", header[12:16])[0])


def _connection(path: Path) -> sqlite3.Connection:
    """A connection as the audit writer opens its own (WAL, no checkpoint at commit)."""
    pragmas = Database(f"sqlite+aiosqlite:///{path}", sqlite_synchronous="normal").sqlite_pragmas
    return audit_sqlite.open_connection(str(path), pragmas, busy_timeout=5.0, autocheckpoint=False)


def _steady_writer(path: Path, stop: threading.Event) -> None:
    """Another connection that commits one small row every millisecond (the strict events)."""
    db = _connection(path)
    try:
        n = 0
        while not stop.wait(0.001):
            db.execute("INSERT INTO small (v) VALUES (?)", (n,))
            n += 1
    finally:
        db.close()


def test_the_wal_starts_over_at_each_checkpoint_while_another_connection_keeps_writing(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    bulk = _connection(path)
    bulk.execute("CREATE TABLE big (k INTEGER PRIMARY KEY, v BLOB)")
    bulk.execute("CREATE TABLE small (k INTEGER PRIMARY KEY, v INTEGER)")
    stop = threading.Event()
    writer = threading.Thread(target=_steady_writer, args=(path, stop))
    writer.start()
    restarted = 0
    try:
        for round_ in range(ROUNDS):
            before = _wal_restarts(path.with_name("audit.db-wal"))
            bulk.execute("BEGIN IMMEDIATE")
            bulk.executemany(
                "INSERT INTO big (k, v) VALUES (?, ?)", [(round_ * 2000 + i, bytes(400)) for i in range(2000)]
            )
            bulk.execute("COMMIT")
            audit_sqlite.checkpoint_wal(bulk, busy_timeout=5.0)
            bulk.execute("INSERT INTO small (v) VALUES (-1)")  # the next write: on a restarted WAL, its header is new
            restarted += _wal_restarts(path.with_name("audit.db-wal")) > before
        wal_bytes = path.with_name("audit.db-wal").stat().st_size
    finally:
        stop.set()
        writer.join()
        bulk.close()
    # Each round writes about 1 MB of pages; a WAL that never started over would hold all 30 rounds.
    assert restarted >= ROUNDS // 2, f"the WAL started over in {restarted} of {ROUNDS} rounds"
    assert wal_bytes < 8 * 1024 * 1024, f"the WAL grew to {wal_bytes} bytes"


def test_a_wal_a_backlog_grew_past_the_limit_is_cut_back_once_it_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    wal = path.with_name("audit.db-wal")
    db = _connection(path)
    try:
        db.execute("CREATE TABLE big (k INTEGER PRIMARY KEY, v BLOB)")
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO big (v) VALUES (?)", [(bytes(1000),)] * 70_000)  # about 80 MB of pages
        db.execute("COMMIT")
        assert wal.stat().st_size > audit_sqlite.WAL_SIZE_LIMIT
        assert audit_sqlite.checkpoint_wal(db, busy_timeout=5.0)
        db.execute("INSERT INTO big (v) VALUES (x'00')")
        assert wal.stat().st_size <= audit_sqlite.WAL_SIZE_LIMIT
    finally:
        db.close()
