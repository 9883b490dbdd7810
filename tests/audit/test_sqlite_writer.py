"""The audit writer's own SQLite connections: the store's durability, batches that stop early for a
strict event (and still verify), and strict events committed without the strict lane."""

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from privacy_middleware.audit import AuditLog, AuditWriter, data_access, export, login_attempt, verify
from privacy_middleware.settings import Settings
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_batches, audit_events

pytestmark = pytest.mark.anyio

MakeWriter = Callable[..., AuditWriter]


def _login(n: int) -> Any:
    return login_attempt(success=True, subject=f"cust_{n}", ip=f"192.0.2.{n % 200}", username=f"u{n}@shop.test")


def _reveal(n: int) -> Any:
    return data_access(principal="staff_1", subject=f"cust_{n}", purpose="support", categories=["user.financial.card"])


async def _stored_subjects(database: Database) -> list[str]:
    """The subjects of the stored events, in the log's order."""
    async with database.connect() as conn:
        subjects = (await conn.execute(sa.select(audit_events.c.subject).order_by(audit_events.c.seq))).scalars()
        return [s for s in subjects if s is not None]


async def _replayed(
    database: Database, writer: AuditWriter, make_writer: MakeWriter, audit_log: AuditLog
) -> AuditWriter:
    """Stop `writer` (what it still holds goes to the spool), then start the next writer, which
    replays the spool, and stop it; that writer is handed back."""
    await writer.stop()
    after = make_writer(database, audit_log)
    await after.start()
    await after.flush()
    await after.stop()
    return after


def _held_commits(writer: AuditWriter, *, first_only: bool) -> tuple[threading.Event, threading.Event]:
    """Hold the writer's bulk commits (or only its first) just before COMMIT until `gate` is set;
    `committing` is set once one is held. The caller puts `writer.log.append_sqlite` back."""
    real = writer.log.append_sqlite
    committing, gate = threading.Event(), threading.Event()

    def slow_commit(db: sqlite3.Connection, events: Any, *args: Any, **kw: Any) -> Any:
        hook = kw.pop("committing", None)

        def held(result: Any) -> None:
            if hook is not None:
                hook(result)
            if not (first_only and committing.is_set()):
                committing.set()
                gate.wait(5.0)  # the commit waits for the disk

        return real(db, events, *args, committing=held, **kw)

    writer.log.append_sqlite = slow_commit  # type: ignore[method-assign]
    return committing, gate


async def _until(ready: Callable[[], object], seconds: float = 1.0) -> None:
    """Let the loop run until `ready()` holds or `seconds` pass (the assertion after it tells which)."""
    for _ in range(round(seconds / 0.01)):
        await asyncio.sleep(0.01)
        if ready():
            return


@contextlib.asynccontextmanager
async def _own_connections(database: Database, make_writer: MakeWriter) -> AsyncIterator[Any]:
    """The writer's own connections, open (one strict event written), on `database`; afterwards the
    writer is stopped and the database disposed of."""
    try:
        await database.upgrade()
        writer = make_writer(database)
        await writer.start()
        await writer.emit_strict(_reveal(1))
        assert writer._own is not None
        yield writer._own
        await writer.stop()
    finally:
        await database.dispose()


@pytest.mark.parametrize(("setting", "level"), [("full", 2), ("normal", 1)])
async def test_the_writers_own_connections_commit_at_the_stores_synchronous_level(
    sqlite_url: str, make_writer: MakeWriter, setting: str, level: int
) -> None:
    async with _own_connections(Database(sqlite_url, sqlite_synchronous=setting), make_writer) as own:
        for connection in (own.now, own.bulk):
            assert connection.execute("PRAGMA synchronous").fetchone()[0] == level
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1


@pytest.mark.parametrize(("configured", "kib"), [(None, 64 * 1024), ("8", 8 * 1024), ("0", None)])
async def test_the_bulk_connections_page_cache_is_the_configured_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_writer: MakeWriter, configured: str | None, kib: int | None
) -> None:
    """64 MB unless configured; 0 leaves SQLite's own default (which the store's connections keep)."""
    if configured is not None:
        monkeypatch.setenv("PRIVACY_DATABASE__SQLITE_AUDIT_CACHE_MB", configured)
    database = Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}", data_dir=tmp_path).open_database()
    async with _own_connections(database, make_writer) as own:
        default = own.now.execute("PRAGMA cache_size").fetchone()[0]
        assert default == -2000  # SQLite's default: 2,000 KiB
        assert own.bulk.execute("PRAGMA cache_size").fetchone()[0] == (-kib if kib is not None else default)


async def test_a_batch_told_to_stop_commits_its_first_slice_sealed_and_the_rest_follows(
    sqlite_url: str, audit_log: AuditLog, tmp_path: Path
) -> None:
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        events = [audit_log.seal(_login(n)) for n in range(250)]
        db = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
        stop = threading.Event()
        stop.set()
        try:
            first = audit_log.append_sqlite(db, events, stop=stop)
            assert (first.first_seq, first.size) == (0, 100)  # one slice, then sealed and committed
            second = audit_log.append_sqlite(db, events[100:])
            assert (second.first_seq, second.size) == (100, 250)
        finally:
            db.close()
        async with database.connect() as conn:
            seals = (await conn.execute(sa.select(audit_batches.c.first_seq, audit_batches.c.tree_size))).all()
            seqs = (await conn.execute(sa.select(audit_events.c.seq).order_by(audit_events.c.seq))).scalars().all()
        assert sorted(seals) == [(0, 100), (100, 250)]
        assert seqs == list(range(250))
        await export(database, tmp_path / "out")
    finally:
        await database.dispose()
    report = verify(tmp_path / "out", audit_log.public_key_pem())
    assert report.status == 0 and report.verified_size == report.events == 250


async def test_a_strict_event_is_committed_without_the_strict_lane_when_nothing_else_is_written(
    sqlite_url: str, make_writer: MakeWriter
) -> None:
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        writer = make_writer(database, flush_interval=5.0)
        await writer.start()
        await writer.flush()
        lane_writes = 0
        write_strict = writer._write_strict

        async def counted() -> None:
            nonlocal lane_writes
            lane_writes += 1
            await write_strict()

        writer._write_strict = counted  # type: ignore[method-assign]
        await writer.emit_strict(_reveal(1))
        await asyncio.sleep(0.05)
        assert lane_writes == 0
        async with database.connect() as conn:
            kinds = (await conn.execute(sa.select(audit_events.c.subject).order_by(audit_events.c.seq))).scalars()
            assert list(kinds) == [None, "cust_1"]  # after log.start
        await writer.stop()
    finally:
        await database.dispose()


async def test_a_strict_event_waits_for_the_slice_in_flight_not_the_whole_bulk_batch(
    sqlite_url: str, make_writer: MakeWriter, tmp_path: Path, audit_log: AuditLog
) -> None:
    """The bulk batch on the writer's thread stops after its current slice for a strict caller: the
    strict event is between two parts of the batch, every event is there once, and the log verifies."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        writer = make_writer(database, batch_size=1000, flush_interval=5.0)
        await writer.start()
        await writer.flush()
        own = writer._own
        assert own is not None
        gate = threading.Event()
        own.thread.submit(gate.wait, 5.0)  # the thread is busy: the bulk batch waits behind this
        for n in range(1000):
            writer.emit(_login(n))
        await _until(writer._write_lock.locked)
        assert writer._write_lock.locked()  # the bulk batch is handed to the thread
        reveal = asyncio.create_task(writer.emit_strict(_reveal(5000)))
        await asyncio.sleep(0.05)
        assert own.stop.is_set()
        gate.set()
        await asyncio.wait_for(reveal, 5.0)
        await writer.stop()
        async with database.connect() as conn:
            subjects = (await conn.execute(sa.select(audit_events.c.subject).order_by(audit_events.c.seq))).scalars()
            logins = [s for s in subjects if s is not None]
            where = audit_events.c.subject == "cust_5000"
            seq = (await conn.execute(sa.select(audit_events.c.seq).where(where))).scalar()
            seals = (await conn.execute(sa.select(audit_batches.c.first_seq, audit_batches.c.tree_size))).all()
        at = logins.index("cust_5000")
        assert 0 < at < 1000  # after the first slice, before the rest of the batch
        # taken into the stopped batch: sealed and committed with its first slice, as its last leaf
        assert any(first < seq and size == seq + 1 for first, size in seals)
        assert [s for s in logins if s != "cust_5000"] == [f"cust_{n}" for n in range(1000)]
        await export(database, tmp_path / "out")
    finally:
        await database.dispose()
    assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 0


async def test_events_taken_when_a_batch_stops_share_its_seal_and_commit(
    sqlite_url: str, audit_log: AuditLog, tmp_path: Path
) -> None:
    """`take` is asked once the batch stops; what it returns goes after the slice, in the same
    batch (one seal, one commit), and the rest of the bulk events follow in a batch of their own."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        events = [audit_log.seal(_login(n)) for n in range(250)]
        strict = [audit_log.seal(_reveal(9000 + n)) for n in range(2)]
        asked: list[int] = []

        def take() -> list[Any]:
            asked.append(1)
            return strict

        db = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
        stop = threading.Event()
        stop.set()
        try:
            first = audit_log.append_sqlite(db, events, stop=stop, take=take)
            assert (first.first_seq, first.size) == (0, 102)  # one slice and the two taken events
            assert first.seal is not None and (first.seal.first, first.seal.count) == (0, 102)
            stop.clear()
            second = audit_log.append_sqlite(db, events[100:], stop=stop, take=take)
            assert (second.first_seq, second.size) == (102, 252)
        finally:
            db.close()
        assert asked == [1]  # not asked when the batch was not stopped
        async with database.connect() as conn:
            seals = (await conn.execute(sa.select(audit_batches.c.first_seq, audit_batches.c.tree_size))).all()
            subjects = (await conn.execute(sa.select(audit_events.c.subject).order_by(audit_events.c.seq))).scalars()
            listed = list(subjects)
        assert sorted(seals) == [(0, 102), (102, 252)]
        assert listed[100:102] == ["cust_9000", "cust_9001"]
        assert listed[:100] + listed[102:] == [f"cust_{n}" for n in range(250)]
        await export(database, tmp_path / "out")
    finally:
        await database.dispose()
    report = verify(tmp_path / "out", audit_log.public_key_pem())
    assert report.status == 0 and report.verified_size == report.events == 252


async def test_a_batch_that_fails_after_taking_strict_events_leaves_them_to_the_strict_lane(
    sqlite_url: str, make_writer: MakeWriter
) -> None:
    """A bulk batch whose commit fails after it took strict events: nothing of it is committed, the
    bulk events are spooled, and the strict caller still gets its event durably recorded."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        writer = make_writer(database, batch_size=300, flush_interval=5.0)
        await writer.start()
        await writer.flush()
        own = writer._own
        assert own is not None
        real = writer.log.append_sqlite
        failed: list[int] = []
        gate = threading.Event()

        def failing(
            db: sqlite3.Connection, events: Any, templates: Any = None, stop: Any = None, take: Any = None, **kw: Any
        ) -> Any:
            if take is None or failed:
                return real(db, events, templates, stop, take, **kw)
            gate.wait(5.0)  # until the strict caller has set stop

            def take_then_fail() -> Any:
                taken = take()
                failed.append(len(taken))
                raise sqlite3.OperationalError("disk I/O error")

            return real(db, events, templates, stop, take_then_fail, **kw)

        writer.log.append_sqlite = failing  # type: ignore[method-assign]
        for n in range(300):
            writer.emit(_login(n))
        await _until(writer._write_lock.locked)
        reveal = asyncio.create_task(writer.emit_strict(_reveal(5000)))
        await asyncio.sleep(0.05)
        assert own.stop.is_set()
        gate.set()
        await asyncio.wait_for(reveal, 5.0)  # written by the strict lane (or spooled), not lost
        assert failed == [1]
        writer.log.append_sqlite = real  # type: ignore[method-assign]
        await writer.flush()
        await writer.stop()
        async with database.connect() as conn:
            subjects = (await conn.execute(sa.select(audit_events.c.subject))).scalars()
            stored = [s for s in subjects if s is not None]
        assert sorted(stored) == sorted([f"cust_{n}" for n in range(300)] + ["cust_5000"])
        assert writer.metrics.dropped.total == 0
    finally:
        await database.dispose()


async def test_a_strict_event_that_comes_during_the_bulk_commit_is_written_before_the_lock_passes_on(
    sqlite_url: str, make_writer: MakeWriter
) -> None:
    """Too late for the batch (it is committing): written on the loop thread as soon as the batch
    returns, while its write lock is still held, not after the strict lane's turns."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        writer = make_writer(database, batch_size=200, flush_interval=5.0)
        await writer.start()
        await writer.flush()
        real = writer.log.append_sqlite
        committing = threading.Event()
        gate = threading.Event()

        def slow_commit(
            db: sqlite3.Connection, events: Any, templates: Any = None, stop: Any = None, take: Any = None, **kw: Any
        ) -> Any:
            result = real(db, events, templates, stop, take, **kw)
            if take is not None:
                committing.set()
                gate.wait(5.0)  # a commit that waits for the disk
            return result

        writer.log.append_sqlite = slow_commit  # type: ignore[method-assign]
        lane: list[bool] = []
        write_batch = writer._write_batch

        async def recorded(batch: Any, *, strict: bool = False) -> None:
            lane.append(strict)
            await write_batch(batch, strict=strict)

        writer._write_batch = recorded  # type: ignore[method-assign]
        for n in range(200):
            writer.emit(_login(n))
        await _until(committing.is_set, seconds=5)
        assert committing.is_set()
        reveal = asyncio.create_task(writer.emit_strict(_reveal(5000)))
        await asyncio.sleep(0.05)
        assert not reveal.done()
        gate.set()
        await asyncio.wait_for(reveal, 5.0)
        assert True not in lane  # the strict lane wrote nothing
        writer.log.append_sqlite = real  # type: ignore[method-assign]
        await writer.stop()
        async with database.connect() as conn:
            subjects = (await conn.execute(sa.select(audit_events.c.subject).order_by(audit_events.c.seq))).scalars()
            logins = [s for s in subjects if s is not None]
        assert logins == [f"cust_{n}" for n in range(200)] + ["cust_5000"]
    finally:
        await database.dispose()


async def test_a_writer_cancelled_mid_batch_answers_its_strict_callers_and_spools_the_rest(
    sqlite_url: str, make_writer: MakeWriter, audit_log: AuditLog, tmp_path: Path
) -> None:
    """The writer's task is cancelled (a shutdown that did not wait) while a bulk batch that took a
    strict event is still on its thread: the thread cannot be stopped, so the writer waits for it and
    the strict caller is answered by how it ended (here: committed with the first slice), the rest of
    the batch goes to the spool, and the next start writes it: nothing lost, the log verifies."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        writer = make_writer(database, batch_size=300, flush_interval=5.0)
        await writer.start()
        await writer.flush()
        real = writer.log.append_sqlite
        took: list[int] = []
        strict_queued, returning = threading.Event(), threading.Event()

        def slow_return(
            db: sqlite3.Connection, events: Any, templates: Any = None, stop: Any = None, take: Any = None, **kw: Any
        ) -> Any:
            if take is None:
                return real(db, events, templates, stop, take, **kw)
            strict_queued.wait(5.0)

            def counted() -> Any:
                taken = take()
                took.append(len(taken))
                return taken

            result = real(db, events, templates, stop, counted, **kw)
            returning.wait(5.0)  # committed, but the thread has not returned yet
            return result

        writer.log.append_sqlite = slow_return  # type: ignore[method-assign]
        for n in range(300):
            writer.emit(_login(n))
        await _until(writer._write_lock.locked)
        reveal = asyncio.create_task(writer.emit_strict(_reveal(5000)))
        await asyncio.sleep(0.05)
        strict_queued.set()
        await _until(lambda: took)
        assert took == [1]
        task = writer._task
        assert task is not None
        task.cancel()
        await asyncio.sleep(0.05)
        returning.set()
        await asyncio.wait_for(reveal, 5.0)  # answered: its event was committed with the batch
        with pytest.raises(asyncio.CancelledError):
            await task
        writer.log.append_sqlite = real  # type: ignore[method-assign]
        assert writer.metrics.spooled.total == 200  # the batch's rest, on disk
        after = await _replayed(database, writer, make_writer, audit_log)  # no error after the cancel
        stored = await _stored_subjects(database)
        assert sorted(stored) == sorted([f"cust_{n}" for n in range(300)] + ["cust_5000"])
        assert writer.metrics.dropped.total == after.metrics.dropped.total == 0
        await export(database, tmp_path / "out")
    finally:
        await database.dispose()
    assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 0


async def test_the_next_batch_is_sealed_while_the_one_in_flight_commits_and_both_keep_their_order(
    sqlite_url: str, make_writer: MakeWriter, audit_log: AuditLog, tmp_path: Path
) -> None:
    """While a bulk batch waits for its commit, the writer task takes and seals the next batch, which
    waits for the write lock; the batches reach the store in the order they were emitted."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        writer = make_writer(database, batch_size=100, flush_interval=5.0)
        await writer.start()
        await writer.flush()
        real = writer.log.append_sqlite
        committing, gate = _held_commits(writer, first_only=True)  # the first batch's commit waits
        for n in range(200):
            writer.emit(_login(n))
        await _until(committing.is_set, seconds=5)
        assert committing.is_set()
        await _until(lambda: not writer._queue)
        assert not writer._queue  # the second batch was taken and sealed meanwhile
        assert writer._write_lock.locked()
        gate.set()
        await writer.flush()
        writer.log.append_sqlite = real  # type: ignore[method-assign]
        await writer.stop()
        assert await _stored_subjects(database) == [f"cust_{n}" for n in range(200)]
        await export(database, tmp_path / "out")
    finally:
        await database.dispose()
    assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 0


async def test_a_writer_cancelled_with_a_sealed_batch_waiting_for_the_lock_spools_it(
    sqlite_url: str, make_writer: MakeWriter, audit_log: AuditLog, tmp_path: Path
) -> None:
    """Cancelled while one batch commits and the next, sealed, waits for it: the first ends as its
    thread ends (committed), the second goes back to the queue and stop() spools it; the next start
    writes it: nothing lost or written twice, the log verifies."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        writer = make_writer(database, batch_size=100, flush_interval=5.0)
        await writer.start()
        await writer.flush()
        real = writer.log.append_sqlite
        committing, gate = _held_commits(writer, first_only=False)
        for n in range(200):
            writer.emit(_login(n))
        await _until(committing.is_set, seconds=5)
        await _until(lambda: not writer._queue)
        assert not writer._queue  # the second batch is sealed and waiting
        task = writer._task
        assert task is not None
        task.cancel()
        await asyncio.sleep(0.05)
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        writer.log.append_sqlite = real  # type: ignore[method-assign]
        assert len(writer._queue) == 100  # the second batch, back in the queue
        after = await _replayed(database, writer, make_writer, audit_log)  # the queue spooled, then replayed
        assert await _stored_subjects(database) == [f"cust_{n}" for n in range(200)]
        assert writer.metrics.dropped.total == after.metrics.dropped.total == 0
        await export(database, tmp_path / "out")
    finally:
        await database.dispose()
    assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 0


async def test_a_writer_cancelled_while_sealing_a_batch_puts_what_it_took_back(
    sqlite_url: str, make_writer: MakeWriter, audit_log: AuditLog, tmp_path: Path
) -> None:
    """Sealing a batch lets the loop run every few events; a writer cancelled at one of those turns
    (a stop that does not wait) puts the events it took back at the head of the queue, sealed and in
    order, and stop() spools them: nothing lost, the next start writes them, the log verifies."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        writer = make_writer(database, batch_size=500, flush_interval=5.0)
        for n in range(100):
            writer.emit(_login(n))
        sealing = asyncio.create_task(writer._next_batch())
        await asyncio.sleep(0)  # it seals up to its first turn of the loop
        assert 0 < 100 - len(writer._queue) < 100
        sealing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sealing
        sealed = [type(item.sealed).__name__ == "SealedEvent" for item in writer._queue]
        assert len(sealed) == 100 and 0 < sum(sealed) < 100 and sealed == sorted(sealed, reverse=True)
        after = await _replayed(database, writer, make_writer, audit_log)  # the queue spooled, then replayed
        assert await _stored_subjects(database) == [f"cust_{n}" for n in range(100)]
        assert writer.metrics.dropped.total == after.metrics.dropped.total == 0
        await export(database, tmp_path / "out")
    finally:
        await database.dispose()
    assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 0
