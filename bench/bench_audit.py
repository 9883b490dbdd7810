"""Audit trail throughput: the batching writer into SQLite and PostgreSQL, four writer processes on
one PostgreSQL chain, strict-event latency, and offline verify.

Run:  .venv/bin/python bench/bench_audit.py [--events 50000 | --seconds 60] [--writers 4] [--no-postgres | --no-sqlite]
      [--strict-every 0.02] [--many-subjects N] [--smoke]

Each figure is printed with a baseline measured in the same run: the raw floor of the work that
cannot be avoided (canonical JSON + SHA-256 per event for the writer; reading + SHA-256 per line
for the verifier), so the ratio says what the log, the database and the checks add. Wall rates on
a shared machine follow the CPU the process was given, so each run also prints CPU time per event:
the process's CPU (writer, driver, SQLite threads) minus the producer's own cost of building the
events, measured separately in the same run. Every run ends with an export of the chain and an
offline verification that must find every emitted event under verified batch seals (0 dropped).
PostgreSQL uses throw-away databases created and dropped here (PRIVACY_TEST_POSTGRES admin DSN).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import logging
import multiprocessing
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).parent))
from common import Row, Table, expect

from privacy_middleware.audit import AuditEvent, AuditLog, AuditWriter, data_access, export, login_attempt, verify
from privacy_middleware.audit.events import new_uid
from privacy_middleware.audit.writer import BATCH_EVENTS
from privacy_middleware.errors import PrivacyError
from privacy_middleware.store import Database
from privacy_middleware.store import audit_subject_runs as subject_runs

POSTGRES_ADMIN_DSN = os.environ.get("PRIVACY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def make_event(i: int) -> AuditEvent:
    """A realistic mix: half logins (three sealed personal values each), half disclosures of 50 records."""
    if i % 2:
        return login_attempt(
            success=i % 7 != 0,
            subject=f"cust_{i % 5000}",
            username=f"user{i % 5000}@shop.test",
            ip=f"198.51.{(i >> 8) % 256}.{i % 256}",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            device=f"dev-{i % 9000}",
            route="POST /account/login",
        )
    return data_access(
        principal="svc_logistics",
        subject=f"cust_{i % 5000}",
        recipient="logistics",
        purpose="delivery",
        categories=["user.contact.address.delivery", "user.contact.phone"],
        fields=["$.shipping.address", "$.shipping.phone"],
        route="GET /orders/{id}",
        action="disclose",
    )


def make_events(n: int) -> list[AuditEvent]:
    return [make_event(i) for i in range(n)]


class EventSource:
    """Fresh events at almost no cost: a pool of realistic events, each re-issued with a new id and time.

    Building an event (validation, network hint) is the request path's cost, not the writer's; a
    pool keeps the generator from competing with the writer for the CPU it measures."""

    def __init__(self, size: int = 2_000) -> None:
        self.pool = make_events(size)
        # each event's fields in declaration order, less its time and uid: built again positionally
        # (dataclasses.replace looks the fields up on every call, and took half the producer's time)
        self._rest = [
            (e.kind, e.class_uid, e.activity_id, e.detail, e.severity_id, e.status, e.subject, e.principal, e.personal)
            for e in self.pool
        ]
        names = [f.name for f in dataclasses.fields(AuditEvent)]
        expect(names[3:5] == ["time", "uid"] and len(names) == 11, f"AuditEvent's fields changed: {names}")

    def __call__(self, i: int) -> AuditEvent:
        kind, class_uid, activity_id, detail, severity_id, status, subject, principal, personal = self._rest[
            i % len(self._rest)
        ]
        return AuditEvent(
            kind,
            class_uid,
            activity_id,
            datetime.now(UTC),
            new_uid(),
            detail,
            severity_id,
            status,
            subject,
            principal,
            personal,
        )


def floor_writer(events: list[AuditEvent]) -> float:
    start = time.perf_counter()
    for e in events:
        hashlib.sha256(b"\x00" + orjson.dumps(e.document(), option=orjson.OPT_SORT_KEYS)).digest()
    return len(events) / (time.perf_counter() - start)


def source_cost(n: int = 20_000) -> float:
    """CPU seconds the producer spends per event (building it), measured alone: not the writer's cost."""
    make = EventSource()
    start = time.process_time()
    for i in range(n):
        make(i)
    return (time.process_time() - start) / n


def strict_event(i: int) -> AuditEvent:
    return data_access(
        principal="staff_9",
        subject=f"cust_{i % 5000}",
        purpose="support",
        categories=["user.financial.card"],
        route="GET /orders/{id}/card",
        action="reveal",
    )


@dataclass(slots=True)
class WriterRun:
    emitted: int  # events handed to the writer (strict ones included)
    seconds: float
    cpu: float  # this process's CPU seconds over the run
    emit_us: float
    spooled: int
    strict_ms: list[float]
    strict_refused: int  # strict reveals answered 503 (not durable within the writer's strict timeout)
    gc_full: int = 0  # full (generation 2) collections during the run
    gc_full_max_ms: float = 0.0  # the longest of them
    batches: int = 0  # PostgreSQL: batches that took the chain's sequencer lock
    lock_wait: float = 0.0  # seconds spent asking for it (waiting behind another writer, plus a round trip)
    lock_hold: float = 0.0  # seconds from holding it to the append's commit

    @property
    def rate(self) -> float:
        return self.emitted / self.seconds


async def run_writer(
    url: str,
    events: int,
    seconds: float | None,
    workdir: Path,
    *,
    key_path: Path | None = None,
    side_key: bytes | None = None,
    strict_every: float = 0.02,
    gc_freeze: bool = False,
) -> WriterRun:
    """Emit `events` (or for `seconds`) as a busy app would, never waiting unless the writer asks to;
    meanwhile a strict reveal every `strict_every` seconds measures what a strict caller waits."""
    database = Database(url)
    lock_times = _time_the_sequencer() if database.is_postgres else None
    try:
        await database.upgrade()
        log = AuditLog(key_path or workdir / "signing.pem", side_key or os.urandom(32), checkpoint_every=1000)
        writer = AuditWriter(database, log, spool_dir=workdir / "spool", registry=CollectorRegistry())
        await writer.start()
        if gc_freeze:
            from privacy_middleware.serve import freeze_startup_heap

            freeze_startup_heap()  # what `serve` does once its app is built
        full: list[float] = []
        began = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if info["generation"] == 2:
                if phase == "start":
                    began[0] = time.perf_counter()
                else:
                    full.append((time.perf_counter() - began[0]) * 1000)

        gc.callbacks.append(on_gc)
        strict_ms: list[float] = []
        refused = 0
        running = True

        async def strict_caller() -> None:
            nonlocal refused
            n = 0
            while running:
                await asyncio.sleep(strict_every)
                before = time.perf_counter()
                try:
                    await writer.emit_strict(strict_event(n))
                except PrivacyError:
                    refused += 1  # fail closed: the reveal would be refused; the event is still written
                else:
                    strict_ms.append((time.perf_counter() - before) * 1000)
                n += 1

        strict_task = asyncio.create_task(strict_caller())
        start = time.perf_counter()
        cpu_start = time.process_time()
        deadline = start + seconds if seconds else None
        in_emit = 0.0
        clock = time.perf_counter
        i = 0
        make_event = EventSource()
        while (i < events) if deadline is None else (clock() < deadline):
            event = make_event(i)
            before = clock()
            writer.emit(event)
            in_emit += clock() - before
            i += 1
            if i % 100 == 0:
                # a busy app: keep emitting, but let the writer run (as network I/O would)
                while writer.pressure() > 0.8:
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0)
        running = False
        await strict_task
        gc.callbacks.remove(on_gc)
        await writer.stop()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        dropped = writer.metrics.dropped.total
        emitted = i + len(strict_ms) + refused
        expect(dropped == 0, f"audit writer dropped {dropped} events")
        expect(writer.metrics.written.total >= emitted, f"only {writer.metrics.written.total} of {emitted} written")
        spooled = writer.metrics.spooled.total
        pauses = (len(full), max(full, default=0.0))
        t = lock_times
        locks = (t.batches, t.wait, t.hold) if t is not None else ()
        return WriterRun(emitted, elapsed, cpu, in_emit / i * 1e6, spooled, strict_ms, refused, *pauses, *locks)
    finally:
        if lock_times is not None:
            lock_times.undo()
        await database.dispose()


@dataclass(slots=True)
class StoreCeiling:
    events: int
    seconds: float
    cpu: float
    checkpoints: int  # WAL checkpoints that started the WAL over
    index: SubjectIndex | None  # None: the B-tree indexes

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def _migrated(url: str) -> Database:
    """A store made by the migrations, its pool closed again (in the loop that opened it)."""
    database = Database(url)
    try:
        await database.upgrade()
    finally:
        await database.dispose()
    return database


# The B-tree indexes the subject runs replaced (migration 48), for `sqlite_ceiling(btree=True)`.
_BTREE_INDEXES = (
    "CREATE INDEX ix_privacy_audit_events_subject_time_us ON privacy_audit_events (subject, time_us)",
    "CREATE INDEX ix_privacy_audit_event_subjects_subject_seq ON privacy_audit_event_subjects (subject, seq)",
)


def sqlite_ceiling(
    url: str, source: str, batch: int = 500, *, btree: bool = False, subjects_in: int | None = None
) -> StoreCeiling:
    """The writer's SQLite work alone, as fast as SQLite does it here: the same tables (a store made
    by the same migrations), the same connection settings as the writer's bulk connection, the
    writer's own statements (`store/audit_sqlite.py`: the chain head locked and saved, multi-row
    inserts of side records and events, one batch seal row, one commit per batch of `batch`), its
    WAL checkpoint every 8,000 events and its steps of the subject index after each batch, for as
    many events as the writer stored in `source`. The rows are copies of rows it stored (same
    sizes), each with a new sequence number, id, reference and time, and the subject of the
    writer's event of the same sequence number (so the subject index grows as it did). No sealing,
    hashing, signing or event loop: what is left is the store's own cost, the ceiling for any
    writer of these tables on this machine.

    `btree`: with the B-tree subject indexes of before migration 48 instead of the subject runs
    (no index steps). `subjects_in`: each row's subject drawn at random from that many (the same
    draws for the same count) instead of the writer's."""
    from privacy_middleware.audit.writer import _BULK_BUSY_TIMEOUT, _WAL_CHECKPOINT_EVENTS
    from privacy_middleware.store import audit_sqlite as sq
    from privacy_middleware.store.audit import BATCH_COLUMNS, EVENT_COLUMNS, SIDE_COLUMNS

    read = sqlite3.connect(source)
    try:
        columns = ", ".join(EVENT_COLUMNS)
        rows = read.execute(f"SELECT {columns} FROM privacy_audit_events ORDER BY seq LIMIT 2000").fetchall()
        sides = {
            r[SIDE_COLUMNS.index("event_uid")]: r
            for r in read.execute(f"SELECT {', '.join(SIDE_COLUMNS)} FROM privacy_audit_side_records LIMIT 4000")
        }
        seal = read.execute(f"SELECT {', '.join(BATCH_COLUMNS)} FROM privacy_audit_batches LIMIT 1").fetchone()
        listed = read.execute("SELECT count(*) FROM privacy_audit_event_subjects").fetchone()[0]
        subjects = [r[0] for r in read.execute("SELECT subject FROM privacy_audit_events ORDER BY seq")]
    finally:
        read.close()
    expect(bool(rows) and bool(sides) and seal is not None, "the writer's store has no rows to copy")
    expect(listed == 0, "the writer stored listed subjects, which the ceiling does not write")
    database = asyncio.run(_migrated(url))
    if subjects_in is not None:
        draw = random.Random(17)
        subjects = [f"cust_{draw.randrange(subjects_in)}" for _ in subjects]
    pragmas, cache_mb = database.sqlite_pragmas, database.sqlite_audit_cache_mb
    path = sq.file_path(database.url)
    expect(path is not None, "the ceiling needs a SQLite file")
    db = sq.open_connection(path, pragmas, busy_timeout=_BULK_BUSY_TIMEOUT, autocheckpoint=False, cache_mb=cache_mb)
    if btree:
        for statement in _BTREE_INDEXES:
            db.execute(statement)
    uid_at, time_at, seq_at = EVENT_COLUMNS.index("uid"), EVENT_COLUMNS.index("time_us"), EVENT_COLUMNS.index("seq")
    sealed_at, subject_at = EVENT_COLUMNS.index("sealed_us"), EVENT_COLUMNS.index("subject")
    salt_at, blob_at = SIDE_COLUMNS.index("salt"), SIDE_COLUMNS.index("blob")
    frontier_at, seal_at = BATCH_COLUMNS.index("frontier"), BATCH_COLUMNS.index("seal")
    events = len(subjects)
    chain = rows[0][EVENT_COLUMNS.index("chain")]
    checkpoints = since = seq = unindexed = 0
    more = True
    start, cpu_start = time.perf_counter(), time.process_time()
    while seq < events:
        now = time.time_ns() // 1000
        event_rows: list[tuple[object, ...]] = []
        side_rows: list[tuple[object, ...]] = []
        db.execute("BEGIN IMMEDIATE")  # as the writer's own transactions begin (audit/log.py `_committed`)
        head = sq.lock_chain(db, chain, now)
        first = seq
        for _ in range(min(batch, events - seq)):
            template = rows[seq % len(rows)]
            row = list(template)
            uid = new_uid()
            row[seq_at], row[uid_at], row[time_at], row[sealed_at] = seq, uid, now, now
            row[subject_at] = subjects[seq]
            event_rows.append(tuple(row))
            side = sides.get(template[uid_at])
            if side is not None:
                ref = (now // 1000 & 0xFFFFFFFFFFFF).to_bytes(6, "big").hex() + os.urandom(10).hex()
                side_rows.append((ref, chain, uid, side[salt_at], side[blob_at], now))
            seq += 1
        sq.insert_many(db, sq.INSERT_SIDE, side_rows)
        sq.insert_many(db, sq.INSERT_EVENTS, event_rows)
        db.execute(sq.INSERT_BATCH, (chain, first, seq, now, seal[frontier_at], seal[seal_at]))
        head.size = seq
        sq.save_head(db, head)
        db.commit()
        since += seq - first
        if since >= _WAL_CHECKPOINT_EVENTS:
            since = 0
            checkpoints += sq.checkpoint_wal(db, _BULK_BUSY_TIMEOUT)
        unindexed += seq - first  # the subject index's steps, as the writer takes them after a batch
        for _ in range(0 if btree else subject_runs.steps_due(unindexed, more)):
            unindexed = 0
            more = subject_runs.step_committed(db, chain).more
            if not more:
                break
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    stored = db.execute("SELECT count(*) FROM privacy_audit_events").fetchone()[0]
    index = None if btree else subject_index(db, chain)
    if btree:  # the path it names: the B-tree indexes took every event, the runs none
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        expect("ix_privacy_audit_events_subject_time_us" in names, "the B-tree subject index is missing")
        runs_entries = db.execute("SELECT count(*) FROM privacy_audit_subject_entries").fetchone()[0]
        expect(runs_entries == 0, "the B-tree ceiling built subject runs")
    db.close()
    expect(stored == events, f"the ceiling stored {stored} of {events} events")
    return StoreCeiling(events, elapsed, cpu, checkpoints, index)


@dataclass(slots=True)
class SubjectIndex:
    runs: int
    levels: dict[int, int]  # runs per level
    tail: int  # events above the runs, which a query scans

    def __str__(self) -> str:
        levels = ", ".join(f"{n} of level {level}" for level, n in sorted(self.levels.items()))
        return f"subject index: {self.runs} runs ({levels}), {self.tail} events in the tail"


def subject_index(db: sqlite3.Connection, chain: str) -> SubjectIndex:
    """The SQLite subject index as a run left it; asserts it kept pace (`store/audit_subject_runs.py`):
    the tail a query scans is a few runs' worth at most, and every event below it is indexed."""
    catalog = subject_runs.runs(db, chain)
    size = db.execute("SELECT size FROM privacy_audit_chains WHERE chain = ?", (chain,)).fetchone()[0]
    mark = subject_runs.watermark(catalog)
    pairs = (
        db.execute(
            "SELECT count(*) FROM privacy_audit_events WHERE chain = ? AND seq < ? AND subject IS NOT NULL",
            (chain, mark),
        ).fetchone()[0]
        + db.execute(
            "SELECT count(*) FROM privacy_audit_event_subjects WHERE chain = ? AND seq < ?", (chain, mark)
        ).fetchone()[0]
    )
    entries = db.execute("SELECT count(*) FROM privacy_audit_subject_entries WHERE chain = ?", (chain,)).fetchone()[0]
    expect(entries == pairs, f"the subject runs hold {entries} entries for {pairs} indexed subjects")
    expect(size - mark < 2 * subject_runs.RUN_EVENTS, f"{size - mark} events left in the subject index's tail")
    levels: dict[int, int] = {}
    for r in catalog:
        levels[r.level] = levels.get(r.level, 0) + 1
    return SubjectIndex(len(catalog), levels, size - mark)


@dataclass(slots=True)
class LockTimes:
    batches: int = 0
    wait: float = 0.0
    hold: float = 0.0
    undo: Any = None


def _time_the_sequencer() -> LockTimes:
    """Time every take of the chain's sequencer lock (`lock_chain`): how long it took to get it, and
    how long it was held (until the append's transaction ended, which releases it)."""
    from privacy_middleware.audit import log as log_module

    times = LockTimes()
    original_lock = log_module.lock_chain
    original_append = log_module.AuditLog.append
    held: dict[int, float] = {}

    async def lock_chain(conn: Any, *args: Any, **kwargs: Any) -> Any:
        before = time.perf_counter()
        head = await original_lock(conn, *args, **kwargs)
        now = time.perf_counter()
        times.wait += now - before
        times.batches += 1
        held[id(asyncio.current_task())] = now
        return head

    async def append(self: AuditLog, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original_append(self, *args, **kwargs)
        finally:
            taken = held.pop(id(asyncio.current_task()), None)
            if taken is not None:
                times.hold += time.perf_counter() - taken

    def undo() -> None:
        log_module.lock_chain = original_lock  # type: ignore[assignment]
        log_module.AuditLog.append = original_append  # type: ignore[method-assign]

    log_module.lock_chain = lock_chain  # type: ignore[assignment]
    log_module.AuditLog.append = append  # type: ignore[method-assign]
    times.undo = undo
    return times


class ServerCpu:
    """CPU seconds of the PostgreSQL server processes on this machine while a run writes: the
    backends serving one database (found by its name in their process title, sampled as they come
    and go) and the server's background processes (WAL writer, checkpointer, ...), from /proc."""

    def __init__(self, database: str, every: float = 0.2) -> None:
        self.database = database
        self.every = every
        self.tick = os.sysconf("SC_CLK_TCK")
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().decode(errors="replace")
                if not title.startswith("postgres"):
                    continue
                with open(f"/proc/{pid}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            cpu = (int(fields[11]) + int(fields[12])) / self.tick
            if pid not in self.kind:
                backend = title.startswith("postgres: ") and " 127.0.0.1(" in title
                if backend and f" {self.database} " not in title:
                    continue  # another database's client (other work on this machine)
                self.kind[pid] = "backends" if backend else "background"
                self.first[pid] = cpu if self._task is None else 0.0
            self.last[pid] = cpu

    async def __aenter__(self) -> ServerCpu:
        self._sample()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while not self._stop.is_set():
            await asyncio.to_thread(self._sample)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every)

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        self._sample()

    def seconds(self, kind: str) -> float:
        return sum(self.last[pid] - self.first[pid] for pid, k in self.kind.items() if k == kind)


def _writer_process(
    url: str,
    seconds: float,
    events: int,
    workdir: str,
    key_path: str,
    side_key: bytes,
    gc_freeze: bool,
    strict_every: float,
) -> Any:
    """One writer instance in its own process (its own connections), for the multi-writer run."""
    logging.getLogger("privacy_middleware.audit").setLevel(logging.ERROR)
    run = asyncio.run(
        run_writer(
            url,
            events,
            seconds or None,
            Path(workdir),
            key_path=Path(key_path),
            side_key=side_key,
            gc_freeze=gc_freeze,
            strict_every=strict_every,
        )
    )
    return dataclasses.astuple(run)


async def run_writers(
    url: str,
    writers: int,
    events: int,
    seconds: float | None,
    workdir: Path,
    gc_freeze: bool = False,
    strict_every: float = 0.02,
) -> list[WriterRun]:
    """`writers` processes append to one chain at once (one sequencer: the head row lock)."""
    key_path = workdir / "signing.pem"
    AuditLog(key_path, os.urandom(32))  # create the shared signing key before the writers start
    side_key = os.urandom(32)
    database = Database(url)
    try:
        await database.upgrade()
    finally:
        await database.dispose()
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with context.Pool(writers) as pool:
        pending = [
            pool.apply_async(
                _writer_process,
                (url, seconds or 0, events, str(workdir / f"w{n}"), str(key_path), side_key, gc_freeze, strict_every),
            )
            for n in range(writers)
        ]
        results = [await loop.run_in_executor(None, result.get) for result in pending]
    return [WriterRun(*result) for result in results]


async def commit_floor(url: str, stop: asyncio.Event, every: float = 0.02) -> list[float]:
    """The floor under a strict reveal on PostgreSQL: one row (1 KB, like a sealed event) committed on
    its own every `every` seconds, by a process whose event loop is otherwise idle, on the same server
    while the writers run (ms each): the server's commit (its WAL flush among the writers' commits)
    without a busy writer process's loop."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    times: list[float] = []
    try:
        await conn.execute("CREATE TABLE bench_commit_floor (n BIGINT PRIMARY KEY, record BYTEA NOT NULL)")
        record = os.urandom(1000)
        while not stop.is_set():
            await asyncio.sleep(every)
            before = time.perf_counter()
            await conn.execute("INSERT INTO bench_commit_floor VALUES ($1, $2)", len(times), record)
            times.append((time.perf_counter() - before) * 1000)
    finally:
        await conn.close()
    return times


async def export_and_verify(url: str, workdir: Path, expected: int) -> tuple[float, float, float, int]:
    """Export the chain, verify it offline (best of three): (events/s, CPU s per event, floor/s, leaves).

    Fails unless every emitted event is in the export and verified under a signed batch seal."""
    database = Database(url)
    out = workdir / "export"
    try:
        await export(database, out)
    finally:
        await database.dispose()
    pem = (out / "public_key.pem").read_bytes()
    lines = (out / "events.jsonl").read_bytes().split(b"\n")
    start = time.perf_counter()
    for line in lines:
        hashlib.sha256(b"\x00" + line).digest()
    floor = len(lines) / (time.perf_counter() - start)
    timings = []
    cpu = []
    for _ in range(3):  # best of three, like timeit: the first run also warms the page cache
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        report = verify(out, pem)
        timings.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    expect(report.status == 0, f"verification failed: {report.reason}")
    expect(report.unverified_tail == 0 and report.verified_size == report.events, "leaves outside the seals")
    expect(report.events >= expected, f"the export holds {report.events} leaves, {expected} were emitted")
    expect(report.batches_verified > 0, "no batch seal was verified")
    return report.events / min(timings), min(cpu) / report.events, floor, report.events


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    import asyncpg

    name = f"pm_bench_{uuid.uuid4().hex[:10]}"
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


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def report_run(table: Table, label: str, run: WriterRun, producer: float, floor: float) -> None:
    writer_cpu = run.cpu / run.emitted - producer
    print(
        f"  {label}: {run.emitted} events in {run.seconds:.1f} s, emit() {run.emit_us:.1f} µs, spooled {run.spooled},"
        f" 0 dropped; CPU {run.cpu / run.emitted * 1e6:.1f} µs/event in the process, of which the producer"
        f" {producer * 1e6:.1f} µs: writer {writer_cpu * 1e6:.1f} µs/event = {1 / writer_cpu:,.0f} events"
        " per CPU second;"
        f" strict reveal p50 {median(run.strict_ms):.1f} ms, p99 {p99(run.strict_ms):.1f} ms"
        f" ({len(run.strict_ms)} reveals, {run.strict_refused} refused with 503 after the strict timeout);"
        f" {run.gc_full} full collections, longest {run.gc_full_max_ms:.0f} ms"
    )
    table.add(Row("audit", f"writer {label}, events/s (wall)", run.rate, 20_000, "20k ev/s target", 1.0, "ev/s", True))
    table.add(
        Row(
            "audit",
            f"writer {label}, events per CPU second",
            1 / writer_cpu,
            20_000,
            "20k ev/s target",
            1.0,
            "ev/s",
            True,
        )
    )
    table.add(
        Row(
            "audit",
            f"writer {label} vs JSON+SHA-256 floor",
            1 / writer_cpu,
            floor,
            "canonical JSON+SHA-256",
            None,
            "ev/s",
            True,
        )
    )
    table.add(Row("audit", f"strict reveal p99 {label}, ms", p99(run.strict_ms), 20, "20 ms budget", 1.0, "ms"))


async def _sqlite_runs(
    table: Table,
    url: str,
    events: int,
    seconds: float | None,
    workdir: Path,
    gc_freeze: bool,
    producer: float,
    floor: float,
    strict_every: float,
    many_subjects: int | None = None,
) -> None:
    run = await run_writer(url, events, seconds, workdir / "sqlite", gc_freeze=gc_freeze, strict_every=strict_every)
    report_run(table, "SQLite", run, producer, floor)
    source = url.split("///", 1)[1]
    read = sqlite3.connect(source)
    try:
        print(f"  writer's {subject_index(read, 'default')}")
    finally:
        read.close()
    ceiling_url = f"sqlite+aiosqlite:///{workdir / 'ceiling.db'}"
    ceiling = await asyncio.to_thread(sqlite_ceiling, ceiling_url, source)
    print(
        f"  SQLite alone (the writer's statements, tables and settings, no sealing or event loop): {ceiling.events}"
        f" events in {ceiling.seconds:.1f} s, {ceiling.cpu / ceiling.events * 1e6:.1f} µs CPU per event,"
        f" {ceiling.checkpoints} WAL restarts; {ceiling.index}"
    )
    table.add(
        Row("audit", "SQLite alone, events/s (wall)", ceiling.rate, 20_000, "20k ev/s target", None, "ev/s", True)
    )
    table.add(
        Row("audit", "writer SQLite vs SQLite alone (wall)", run.rate, ceiling.rate, "SQLite alone", None, "ev/s", True)
    )
    # the subject runs against the B-tree indexes they replaced: SQLite alone, the same events
    for subjects_in in (None, *((many_subjects,) if many_subjects else ())):
        where = "" if subjects_in is None else f", subjects drawn from {subjects_in:,}"
        runs = ceiling
        if subjects_in is not None:
            runs_url = f"sqlite+aiosqlite:///{workdir / f'ceiling-runs-{subjects_in}.db'}"
            runs = await asyncio.to_thread(sqlite_ceiling, runs_url, source, subjects_in=subjects_in)
        btree_url = f"sqlite+aiosqlite:///{workdir / f'ceiling-btree-{subjects_in}.db'}"
        btree = await asyncio.to_thread(sqlite_ceiling, btree_url, source, btree=True, subjects_in=subjects_in)
        print(
            f"  SQLite alone{where}: subject runs {runs.rate:,.0f} events/s ({runs.cpu / runs.events * 1e6:.1f} µs"
            f" CPU per event; {runs.index}), B-tree indexes {btree.rate:,.0f} events/s"
            f" ({btree.cpu / btree.events * 1e6:.1f} µs CPU per event)"
        )
        label = f"SQLite alone{where}: subject runs vs B-tree (wall)"
        table.add(Row("audit", label, runs.rate, btree.rate, "B-tree subject indexes", None, "ev/s", True))
    vrate, vcpu, vfloor, count = await export_and_verify(url, workdir / "sqlite", run.emitted)
    print(f"  verify: {count} leaves, {vcpu * 1e6:.2f} µs CPU per event ({1 / vcpu:,.0f} events per CPU second)")
    table.add(Row("audit", "offline verify, events/s (wall)", vrate, 200_000, "200k ev/s target", 1.0, "ev/s", True))
    table.add(
        Row(
            "audit",
            "offline verify, events per CPU second",
            1 / vcpu,
            200_000,
            "200k ev/s target",
            1.0,
            "ev/s",
            True,
        )
    )
    table.add(
        Row(
            "audit",
            "offline verify vs read+SHA-256 floor",
            vrate,
            vfloor,
            "read+SHA-256 per line",
            None,
            "ev/s",
            True,
        )
    )


async def main(
    smoke: bool = False,
    events: int = 50_000,
    seconds: float | None = None,
    postgres: bool = True,
    writers: int = 4,
    gc_freeze: bool = False,
    sqlite_too: bool = True,
    strict_every: float = 0.02,
    many_subjects: int | None = None,
) -> list[Row]:
    if smoke:
        events, seconds, writers = 600, None, 2
    table = Table()
    logging.getLogger("privacy_middleware.audit").setLevel(logging.ERROR)
    what = f"for {seconds:g} s" if seconds else f"{events} events"
    print(
        f"bench_audit: {what} per writer (half logins with 3 sealed values, half disclosures), batches of"
        f" {BATCH_EVENTS['sqlite']} (SQLite) and {BATCH_EVENTS['postgresql']} (PostgreSQL) events, queue"
        f" 10000, checkpoint every 1000, a strict reveal {strict_every * 1000:g} ms after the last one returned;"
        f" Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.1f}" + ("; start-up heap frozen as `serve` does" if gc_freeze else "")
    )
    sample = make_events(min(events, 20_000))
    floor = floor_writer(sample)
    del sample
    producer = source_cost(2_000 if smoke else 20_000)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        if sqlite_too:
            # smoke: enough events for the subject index to build runs (store/audit_subject_runs.py)
            sqlite_events = 3 * subject_runs.RUN_EVENTS if smoke else events
            await _sqlite_runs(
                table, url, sqlite_events, seconds, workdir, gc_freeze, producer, floor, strict_every, many_subjects
            )
        if postgres:
            async with postgres_database() as pg_url:
                async with ServerCpu(pg_url.rsplit("/", 1)[1]) as server:
                    pg = await run_writer(
                        pg_url, events, seconds, workdir / "pg", gc_freeze=gc_freeze, strict_every=strict_every
                    )
                report_run(table, "PostgreSQL", pg, producer, floor)
                print(
                    f"  PostgreSQL server for that writer: backends {server.seconds('backends') / pg.emitted * 1e6:.1f}"
                    f" µs/event, background {server.seconds('background'):.1f} s in all"
                )
                await export_and_verify(pg_url, workdir / "pg", pg.emitted)
            if writers < 2:
                return table.rows
            async with postgres_database() as pg_url:
                started = time.perf_counter()
                floor_stop = asyncio.Event()
                floor_task = asyncio.create_task(commit_floor(pg_url, floor_stop))
                async with ServerCpu(pg_url.rsplit("/", 1)[1]) as server:
                    runs = await run_writers(
                        pg_url, writers, events, seconds, workdir / "multi", gc_freeze, strict_every
                    )
                wall = time.perf_counter() - started
                floor_stop.set()
                commits = await floor_task
                total = sum(r.emitted for r in runs)
                _, _, _, leaves = await export_and_verify(pg_url, workdir / "multi", total)
                expect(leaves == total + 2 * writers, f"{leaves} leaves for {total} events from {writers} writers")
                busiest = max(r.seconds for r in runs)
                strict = [ms for r in runs for ms in r.strict_ms]
                refused = sum(r.strict_refused for r in runs)
                cpu = sum(r.cpu for r in runs) / total - producer
                print(
                    f"  {writers} writer processes on one PostgreSQL chain: {total} events, one chain of {leaves}"
                    f" leaves verified; {total / busiest:,.0f} events/s while all wrote ({wall:.1f} s with start-up);"
                    f" client CPU {cpu * 1e6:.1f} µs/event; strict reveal p50 {median(strict):.1f} ms,"
                    f" p99 {p99(strict):.1f} ms ({len(strict)} reveals, {refused} refused with 503)"
                )
                print(
                    "  floor: a one-row commit every 20 ms from an idle process, same server, meanwhile:"
                    f" p50 {median(commits):.1f} ms, p99 {p99(commits):.1f} ms ({len(commits)} commits)"
                )
                clients = sum(r.cpu for r in runs)
                backends, background = server.seconds("backends"), server.seconds("background")
                used = clients + backends + background
                cores = os.cpu_count() or 1
                batches = sum(r.batches for r in runs)
                print(
                    f"  CPU while they wrote ({busiest:.1f} s x {cores} cores = {busiest * cores:.1f} CPU s):"
                    f" writer processes {clients:.1f} s ({clients / total * 1e6:.1f} µs/event, producer included),"
                    f" PostgreSQL backends {backends:.1f} s ({backends / total * 1e6:.1f} µs/event),"
                    f" PostgreSQL background {background:.1f} s; of the CPU these used: writers"
                    f" {clients / used:.0%}, PostgreSQL {(backends + background) / used:.0%}; load average"
                    f" {os.getloadavg()[0]:.1f}"
                )
                if batches:
                    wait = sum(r.lock_wait for r in runs)
                    hold = sum(r.lock_hold for r in runs)
                    print(
                        f"  sequencer lock (the head row, SELECT ... FOR UPDATE): {batches} takes"
                        f" ({total / batches:.0f} events each); asking for it"
                        f" {wait / batches * 1e3:.1f} ms per take ({wait / (busiest * writers):.0%} of the writers'"
                        f" time), held {hold / batches * 1e3:.1f} ms per take until commit ({hold / busiest:.0%} of"
                        " the wall time: the share of the run during which one writer held it)"
                    )
                label = f"{writers} writers PostgreSQL"
                table.add(
                    Row(
                        "audit",
                        f"{label}, events/s (wall)",
                        total / busiest,
                        20_000,
                        "20k ev/s target",
                        1.0,
                        "ev/s",
                        True,
                    )
                )
                table.add(
                    Row(
                        "audit",
                        f"{label} vs 1 writer, events/s",
                        total / busiest,
                        pg.rate,
                        "1 writer, same run",
                        None,
                        "ev/s",
                        True,
                    )
                )
                table.add(Row("audit", f"strict reveal p99 {label}, ms", p99(strict), 20, "20 ms budget", 1.0, "ms"))
    return table.rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, help="emit for this long instead of a fixed count (sustained)")
    parser.add_argument(
        "--writers", type=int, default=4, help="writer processes on one PostgreSQL chain (below 2: that run is skipped)"
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true", help="only the PostgreSQL runs (one writer, then several)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--gc-freeze", action="store_true", help="freeze the start-up heap, as `serve` does")
    parser.add_argument(
        "--strict-every",
        type=float,
        default=0.02,
        help="seconds each strict caller sleeps between reveals (its rate also follows how fast they return)",
    )
    parser.add_argument(
        "--many-subjects",
        type=int,
        help="SQLite alone also with subjects drawn from this many (the writer's events name 5,000)",
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            args.smoke,
            args.events,
            args.seconds,
            not args.no_postgres,
            args.writers,
            args.gc_freeze,
            not args.no_sqlite,
            args.strict_every,
            args.many_subjects,
        )
    )
