"""The batching audit writer: `emit` never blocks or raises, batches leave the request path.

Events are queued in a bounded deque and sealed and appended to the log in batches by one
background task (nothing personal is ever spooled in clear). When the store fails, the batch goes
to the fsynced local spool and the spool is replayed, in order, before anything newer once the
store answers again. When the queue is full (the store is slower than the traffic), `emit` seals
the event and appends it to a second spool, the overflow, instead of dropping it; everything
emitted after it follows it there until the writer has drained the overflow, so the log keeps
emit order (strict events excepted: they wait for the store). `pressure()` tells a caller that
can wait how full the queue is. Strict events have a lane of their own: a second task writes them
in their own small batches at once, so a strict caller waits for its own batch, not for the bulk
batches queued before it. On SQLite, whose writes take turns anyway, a strict event is committed
at once on the loop thread when nothing else is being written, and otherwise is taken into the
bulk batch in flight after its current slice (sealed and committed with that slice: one commit and
one wait for the disk, not two; then the rest of the batch follows); one that comes while the batch
commits is written on the loop thread as soon as the batch returns, before its write lock passes on.
On PostgreSQL a strict event is committed to the strict outbox first (one row, outside the chain's
lock), which is all its caller waits for; the next bulk batch appends it to the chain at its head
and deletes the row in the same transaction (`outbox.py`).
Every write to the store, from either lane, first replays what an outage left in the spool (one
replay at a time), so spooled events always come before anything newer; a strict caller right
after an outage therefore also waits for that replay (unless its event went to the outbox).
An event is dropped only when it cannot be sealed or the disk
refuses the spool; a drop is an alarm: metered, logged as an error and written to the log as an
`events_dropped` Detection Finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import exc as sa_exc

from ..errors import PrivacyError
from ..store import Database, audit_sqlite
from ..store import audit_subject_runs as subject_runs
from ..store.audit import existing_uids
from .events import SEVERITY_CRITICAL, AuditEvent, detection_finding, events_dropped, lifecycle
from .log import AppendResult, AuditLog
from .outbox import Committer, append_left
from .sealing import SealedEvent
from .spool import Spool, SpoolContents, SpoolCorruptError, SpoolSlot

logger = logging.getLogger("privacy_middleware.audit")

# errors that say "this record", not "this store": retrying will not help
_POISON = (sa_exc.IntegrityError, sa_exc.DataError, ValueError, TypeError, OverflowError)
_POISON_DRIVER_NAMES = ("DataError", "IntegrityError", "IntegrityConstraintViolationError")


def _is_poison(exc: BaseException) -> bool:
    """True when the store refused a record's data (drivers wrap this differently), not the write."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, sa_exc.OperationalError | sa_exc.InterfaceError):
            return False
        if isinstance(seen, _POISON) or type(seen).__name__ in _POISON_DRIVER_NAMES:
            return True
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) and orig is not seen else seen.__cause__
    return False


_SEAL_SLICE = 32  # events sealed (and serialised) between two turns of the event loop
# SQLite: events the writer commits between two WAL checkpoints. A checkpoint copies every page
# changed since the last one; the (subject, time) index changes pages at random places, so a longer
# interval copies each page once for more events (2,000 to 8,000: about 2.8 to 2.0 µs of checkpoint
# per event). The WAL grows to about 35 MB between checkpoints here and starts over at each one
# (`audit_sqlite.checkpoint_wal`).
_WAL_CHECKPOINT_EVENTS = 8000
_BULK_BUSY_TIMEOUT = 5.0  # seconds a bulk batch waits for another writer of the database
_ON_LOOP_MAX = 16  # SQLite: strict batches up to this size are written on the event loop thread
# Events per bulk batch by default. PostgreSQL: each batch costs about seven round trips and a
# commit, whose waits for the server the event loop cannot fill (sealing the next batch between
# them delayed each answer as much as it saved), so larger batches pay them for more events: one
# writer over 60 s (bench_audit, alternating runs) wrote 22,179 and 23,664 events/s with 1,000
# against 20,139 and 20,522 with 500. SQLite: a batch goes in slices on the writer's own thread
# and the next one is sealed during its commit.
BATCH_EVENTS = {"postgresql": 1000, "sqlite": 500}


class _PartlyWritten(Exception):
    """An append that failed after its first `written` events were committed."""

    def __init__(self, written: int) -> None:
        super().__init__(f"the first {written} events were committed")
        self.written = written


class _OwnSqlite:
    """The writer's own connections to a SQLite file, kept open for its life (no pool checkout,
    no reset trip per batch), with the store's pragmas.

    `bulk` writes bulk batches on a thread of its own, a slice at a time: a strict caller sets
    `stop`, and the batch takes the queued strict events after its current slice and is sealed and
    committed with them (the rest follows). `now` is used on the event loop thread for small strict
    batches when nothing else is written: written on a worker thread, a batch waits for the GIL
    after every SQLite step while the loop is busy (up to the 5 ms switch interval each), which made
    a strict caller wait tens of milliseconds for well under one millisecond of work. `now` has a
    busy timeout of 0 (a database another connection is writing sends the batch to the thread, which
    waits as the store does). Neither checkpoints the WAL at commit: the writer does it on the
    thread, outside its write lock. `bulk` has the page cache the store is configured with
    (`sqlite_audit_cache_mb`), for the pages its batches and the subject index's steps read back."""

    def __init__(self, path: str, pragmas: Callable[[Any, Any], None], cache_mb: int = 0) -> None:
        self.bulk = audit_sqlite.open_connection(
            path, pragmas, busy_timeout=_BULK_BUSY_TIMEOUT, autocheckpoint=False, cache_mb=cache_mb
        )
        try:
            self.now = audit_sqlite.open_connection(path, pragmas, busy_timeout=0.0, autocheckpoint=False)
        except BaseException:
            self.bulk.close()
            raise
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="privacy-audit-sqlite")
        self.written = 0  # events committed since the last WAL checkpoint
        self.stop = threading.Event()  # set by a strict caller: the bulk batch on `thread` ends early

    def close(self) -> None:
        self.thread.shutdown(wait=True)
        self.now.close()
        self.bulk.close()


DEFAULT_STRICT_KINDS = frozenset(
    {"api_activity.data_reveal", "api_activity.data_export", "api_activity.admin_read", "api_activity.key_*"}
)


@dataclass(slots=True)
class _Item:
    # Sealed in the writer task, off the request path: a built event, or a thunk that builds one.
    sealed: SealedEvent | AuditEvent | Callable[[], AuditEvent]
    future: asyncio.Future[None] | None = None
    drops: int = 0
    leaf: tuple[bytes, bytes] | None = None  # its leaf serialised ahead (log.leaf_templates), else None
    outbox: bool = False  # committed to the strict outbox: never spooled (the outbox keeps it)


class _Count:
    """A prometheus counter plus the plain total the writer reports in its stop leaf."""

    def __init__(self, name: str, doc: str, registry: CollectorRegistry) -> None:
        self._counter = Counter(name, doc, registry=registry)
        self.total = 0

    def inc(self, amount: int = 1) -> None:
        if amount:
            self._counter.inc(amount)
            self.total += amount


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = _Count("privacy_audit_events_written", "Audit events written to the store", registry)
        self.spooled = _Count("privacy_audit_events_spooled", "Audit events spooled to local disk", registry)
        self.replayed = _Count("privacy_audit_events_replayed", "Spooled audit events replayed", registry)
        self.dropped = _Count("privacy_audit_events_dropped", "Audit events dropped (counted)", registry)


def _unavailable() -> PrivacyError:
    return PrivacyError("audit_unavailable", "the audit trail cannot record this action right now", 503)


class AuditWriter:
    """One per process; `start()` at application start, `stop()` at shutdown.

    `strict_classes` names event kinds (`"prefix*"` matches a prefix) that may use a reserve of
    10 % beyond `queue_size` before `emit()` drops anything: payment reveals, exports, admin reads
    and key operations by default. `emit_strict()` is for actions that must not happen unrecorded.
    `batch_size` bounds the events of one bulk batch (by default 1,000 on PostgreSQL, 500 on SQLite).
    Call `emit` from the event loop thread.
    """

    def __init__(
        self,
        database: Database,
        log: AuditLog,
        *,
        spool_dir: str | os.PathLike[str],
        queue_size: int = 10_000,
        batch_size: int | None = None,
        flush_interval: float = 0.2,
        strict_classes: Iterable[str] = DEFAULT_STRICT_KINDS,
        registry: CollectorRegistry | None = None,
        strict_timeout: float = 5.0,
        retry_interval: float = 1.0,
        self_check: bool = False,
        outbox_claim_after: float = 10.0,
    ) -> None:
        if batch_size is None:
            batch_size = BATCH_EVENTS["postgresql" if database.is_postgres else "sqlite"]
        if queue_size < 1 or batch_size < 1 or flush_interval <= 0:
            raise ValueError("queue_size, batch_size and flush_interval must be positive")
        if outbox_claim_after < 0:
            raise ValueError("outbox_claim_after must not be negative")
        self.database = database
        self.log = log
        self.slot = SpoolSlot(spool_dir, ("audit-spool", "audit-overflow"))
        self.spool = Spool(slot=self.slot)
        self.overflow = Spool(name="audit-overflow", slot=self.slot)
        self.queue_size = queue_size
        self.reserve = max(100, queue_size // 10)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.strict_timeout = strict_timeout
        self.retry_interval = retry_interval
        self.self_check = self_check
        # PostgreSQL: strict events are committed to the outbox and appended to the chain after;
        # rows a writer left behind are appended by any writer once this old (checked half as often)
        self.outbox_claim_after = outbox_claim_after
        self._outbox = database.is_postgres
        self._last_outbox_look = 0.0
        self._committing: set[asyncio.Task[None]] = set()  # outbox inserts in flight
        # committed to the outbox: each goes into the next bulk batch, at its head (no take of its own)
        self._outboxed: deque[_Item] = deque()
        self._committer = Committer(database, log) if self._outbox else None
        self._strict_exact = frozenset(k for k in strict_classes if not k.endswith("*"))
        self._strict_prefix = tuple(k[:-1] for k in strict_classes if k.endswith("*"))
        self.metrics = _Metrics(registry if registry is not None else CollectorRegistry())
        self.spool_errors: list[SpoolCorruptError] = []
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._strict: deque[_Item] = deque()
        self._strict_wakeup = asyncio.Event()
        self._strict_lock = asyncio.Lock()
        self._strict_task: asyncio.Task[None] | None = None
        self._start_written = asyncio.Event()  # the strict lane opens once log.start is stored or spooled
        self._spool_lock = asyncio.Lock()
        # One replay of the outage spool at a time: both lanes and the housekeeping replay it, and
        # two replays of one claimed file would append its events twice or lose the file under them.
        self._replay_lock = asyncio.Lock()
        # Taking a batch off the queue and sealing it holds _take_lock, which is handed over to
        # _write_lock (acquired before it is released) for the store write: batches keep their
        # order, flush() waits for both (so "flushed" means "in the store"), and a strict batch
        # waits only for the bulk batch being written, never for the next one being sealed.
        self._take_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._strict_waiting = 0  # strict batches waiting for _write_lock (SQLite)
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Task[None] | None = None  # the writer task's batch in flight
        self._committing_now = asyncio.Event()  # set (from its thread) once that batch is committing
        self._sqlite_path = audit_sqlite.file_path(database.url)
        self._own: _OwnSqlite | None = None
        # SQLite's subject index (store/audit_subject_runs.py): events appended since its last
        # steps, and whether the last step said another is due (at first: whatever a restart left)
        self._unindexed = 0
        self._index_more = True
        self._accepting = True
        self._stopping = False
        self._pending_drops = 0
        self._spool_pending = False
        self._spilling = False  # emit goes to the overflow spool until the writer has drained it
        self._overflow_unsynced = False
        self._last_replay_try = 0.0
        self._last_append = time.monotonic()
        self._last_checkpoint_try = time.monotonic()
        self._uncheckpointed = False
        self._last_drop_log = 0.0

    # -- request path -------------------------------------------------------------------------

    def is_strict(self, event: AuditEvent) -> bool:
        return event.kind in self._strict_exact or event.kind.startswith(self._strict_prefix or ("\0",))

    def pressure(self) -> float:
        """How full the queue is (1.0 = full; above 1 while events overflow to disk)."""
        return (len(self._queue) + (self.queue_size if self._spilling else 0)) / self.queue_size

    def emit(self, event: AuditEvent) -> None:
        """Queue an event without waiting. Never raises; over the bound it goes to the overflow spool."""
        try:
            if self._spilling or not self._accepting or len(self._queue) >= self.queue_size:
                self._spill(event)
                return
            self._queue.append(_Item(event))
            if len(self._queue) >= self.batch_size:
                self._wakeup.set()
        except Exception as exc:  # the request path must never fail because of audit
            logger.error("audit event could not be queued (%s)", exc.__class__.__name__)
            self._drop(1)

    def emit_later(self, build: Callable[[], AuditEvent]) -> None:
        """Queue an event the writer builds and seals itself: the request path only appends."""
        if self._spilling or not self._accepting or len(self._queue) >= self.queue_size:
            self._spill(build)
            return
        self._queue.append(_Item(build))
        if len(self._queue) >= self.batch_size:
            self._wakeup.set()

    def _spill(self, event: AuditEvent | Callable[[], AuditEvent]) -> None:
        """Seal the event and append it to the overflow spool (page cache; the writer fsyncs)."""
        try:
            sealed = self.log.seal(event if isinstance(event, AuditEvent) else event())
        except Exception as exc:  # a bad event is counted, never blocks the others
            logger.error("audit event could not be sealed (%s)", exc.__class__.__name__)
            self._drop(1)
            return
        self._spill_sealed(sealed)

    def _spill_sealed(self, sealed: SealedEvent) -> None:
        try:
            self.overflow.append([sealed], sync=False)
        except OSError as exc:
            logger.error("audit overflow spool unwritable (%s)", exc.__class__.__name__)
            self._drop(1)
            return
        if not self._spilling:
            logger.warning("audit queue full: events overflow to the local spool until the store catches up")
            self._spilling = True
        self._overflow_unsynced = True
        self.metrics.spooled.inc(1)
        self._wakeup.set()

    async def emit_strict(self, event: AuditEvent) -> None:
        """Return only once the event is committed to the store or fsynced to the spool."""
        if not self._accepting or self._strict_task is None or self._strict_task.done():
            raise _unavailable()
        if len(self._strict) >= self.reserve:
            raise _unavailable()
        sealed = self.log.seal(event)
        committer = self._committer
        if self._write_now(sealed) or (committer is not None and await self._commit_to_outbox(committer, sealed)):
            return
        if self._own is not None:
            self._own.stop.set()  # a bulk batch being written ends after its current slice
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._strict.append(_Item(sealed, future))
        self._strict_wakeup.set()
        # The lane settles the future; the caller wakes on it directly (a wait_for over a shield
        # took three more turns of a busy loop). A caller that gives up leaves the event queued.
        timer = loop.call_later(self.strict_timeout, _time_out, future)
        try:
            await future
        except (TimeoutError, OSError, PrivacyError):
            raise _unavailable() from None
        finally:
            timer.cancel()

    async def _commit_to_outbox(self, committer: Committer, sealed: SealedEvent) -> bool:
        """PostgreSQL: commit the event to the strict outbox; True once the row is committed. The
        next bulk batch then appends it to the chain, at its head (a take of the chain's lock of its
        own would cost the other writers as much as a whole batch). False when the store refused it
        (the strict lane then writes or spools it, and the caller waits for that); 503 when it takes
        longer than the strict timeout.

        The insert runs in a task of its own that ends whatever the caller does: what it ends with
        decides where the event goes (the bulk batch with its outbox row, or the strict lane to be
        written or spooled), so it is appended once either way."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        task = loop.create_task(committer.commit(sealed))
        self._committing.add(task)
        task.add_done_callback(self._committing.discard)
        task.add_done_callback(functools.partial(self._outbox_committed, sealed, answer))
        timer = loop.call_later(self.strict_timeout, _time_out, answer)
        try:
            return await answer
        except TimeoutError:
            raise _unavailable() from None
        finally:
            timer.cancel()

    def _outbox_committed(self, sealed: SealedEvent, answer: asyncio.Future[bool], task: asyncio.Task[None]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if not failed:  # the next bulk batch appends it to the chain (its take deletes the row)
            self._outboxed.append(_Item(sealed, outbox=True))
            self._wakeup.set()
        elif answer.done():  # the caller has its 503: the strict lane writes (or spools) it all the same
            self._strict.append(_Item(sealed))
            self._strict_wakeup.set()
        if failed:
            error = "cancelled" if task.cancelled() else type(task.exception()).__name__
            logger.warning("audit strict outbox unavailable (%s); the strict lane writes the event", error)
        if not answer.done():
            answer.set_result(not failed)

    def _write_now(self, sealed: SealedEvent) -> bool:
        """SQLite, nothing being written or waiting: commit a strict event at once, on this thread.

        One short transaction on the writer's own connection, without a turn of the event loop or
        a trip to a thread: well under a millisecond of CPU, plus the commit's wait for the disk
        at the store's synchronous level (an fsync of the WAL with FULL, about 2 ms here). False
        (the lane writes it) when anything else is being written, strict events are queued, an
        outage's spool waits for its replay, or the database is busy with another connection."""
        own = self._own
        if (
            own is None
            or self._write_lock.locked()
            or self._strict
            or self._replay_lock.locked()
            or self._spool_pending
            or not self._start_written.is_set()
        ):
            return False
        try:
            result = self.log.append_sqlite(own.now, [sealed])
        except Exception as exc:
            if not audit_sqlite.is_busy(exc):
                logger.warning("audit strict write failed (%s); the strict lane retries it", exc.__class__.__name__)
            return False
        self._appended(own, 1)
        self.metrics.written.inc(1)
        self._last_append = time.monotonic()
        self._uncheckpointed = result.checkpoint is None
        return True

    def _drop(self, count: int) -> None:
        self._pending_drops += count
        self.metrics.dropped.inc(count)
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:  # one line per second, not one per event
            self._last_drop_log = now
            logger.error("ALARM audit events dropped: %d so far", self.metrics.dropped.total)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._accepting = True
        self._stopping = False
        self._last_outbox_look = 0.0  # rows other writers left are looked at once started
        self._start_written.clear()
        self.slot.reclaim()
        try:  # spools of processes that ended with events on disk (a killed worker's)
            await asyncio.to_thread(self.slot.adopt_orphans)
        except OSError as exc:
            logger.error("audit spools of ended processes not adopted (%s)", exc.__class__.__name__)
        self._spool_pending = await asyncio.to_thread(self.spool.pending)
        if await asyncio.to_thread(self.overflow.pending):
            self._spilling = True  # an earlier run's overflow comes before anything emitted now
        start = lifecycle("start", key_id=self.log.key_id, spool_pending=self._spool_pending)
        self._queue.appendleft(_Item(self.log.seal(start)))
        if self.self_check:
            await self._check_integrity()
        self._wakeup.set()
        self._task = asyncio.create_task(self._run(), name="privacy-audit-writer")
        self._strict_task = asyncio.create_task(self._run_strict(), name="privacy-audit-strict-writer")

    async def _check_integrity(self) -> None:
        """Start-up alarm: a stored log that no longer matches its checkpoints becomes a finding."""
        try:
            problem = await self.log.self_check(self.database)
        except Exception as exc:
            logger.warning("audit self check skipped (%s)", exc.__class__.__name__)
            return
        if problem is not None:
            logger.error("audit log tampering detected: %s", problem)
            finding = detection_finding(
                "tampering_detected",
                title="stored audit log does not match its signed checkpoints",
                severity_id=SEVERITY_CRITICAL,
                related={"problem": problem},
            )
            self._queue.insert(1, _Item(self.log.seal(finding)))

    async def stop(self) -> None:
        """Flush everything (store or spool), write the stop leaf with its checkpoint, end the task."""
        task = self._task
        if task is not None and task.done():
            # the writer's task ended without stop() (cancelled, or failed): nothing writes the queue
            # any more, so it goes to the overflow spool as if the writer had never started
            self._task = None
            self._accepting = False
            if not task.cancelled() and task.exception() is not None:
                logger.error("audit writer had stopped (%s)", type(task.exception()).__name__)
            await self._stop_strict()
            await self._close_own()
        if self._task is None:
            # emitted but never started: keep them in the overflow spool for the next start
            queued = [item for item in self._queue if item.future is None]
            self._queue.clear()
            self._accepting = False
            for item in queued:
                if isinstance(item.sealed, SealedEvent):
                    self._spill_sealed(item.sealed)
                else:
                    self._spill(item.sealed)
            if self._overflow_unsynced:
                await asyncio.to_thread(self.overflow.sync)
                self._overflow_unsynced = False
            self.slot.release()
            return
        self._accepting = False
        await self._stop_strict()
        stop = lifecycle(
            "stop",
            written=self.metrics.written.total,
            dropped=self.metrics.dropped.total,
        )
        if self._spilling:
            self._spill_sealed(self.log.seal(stop))  # after the overflow it follows
        else:
            self._queue.append(_Item(self.log.seal(stop)))
        self._accepting = False
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        try:
            await task
        finally:
            await self._close_own()
        self.slot.release()  # what is left on disk is the next start's (or another process's) to replay

    async def _stop_strict(self) -> None:
        if self._committing:  # their events are queued before the stop leaf
            await asyncio.wait(set(self._committing))
        if self._committer is not None:
            await self._committer.close()
        task, self._strict_task = self._strict_task, None
        if task is not None:
            self._strict_wakeup.set()
            await task

    async def flush(self) -> None:
        """Write everything queued so far, overflow included (tests and shutdown hooks use it)."""
        while self._queue and not self._start_written.is_set():
            await self._write_next()
        if self._committing:  # strict events being committed to the outbox are queued then
            await asyncio.wait(set(self._committing))
        while self._strict:
            await self._write_strict()
        async with self._strict_lock:
            pass  # a strict batch the lane took is now in the store (or the spool)
        while self._queue or self._outboxed or self._spilling:
            while self._queue or self._outboxed:
                await self._write_next()
            if self._spilling and not await self._drain_overflow():
                return  # the store is down: the overflow waits on disk
        async with self._take_lock:
            pass  # a batch the writer task took off the queue is now waiting for (or holds) _write_lock
        async with self._write_lock:
            pass  # the writer task's batch in flight, if any, has reached the store
        if self._spool_pending:
            # An outage's spool is replayed before the next write; with nothing left to write (or
            # only strict events written since), replay it here, so "flushed" includes it.
            try:
                await self._replay_pending()
            except Exception as exc:
                logger.warning("audit spool replay postponed (%s)", exc.__class__.__name__)

    async def _write_next(self, *, overlap: bool = False) -> None:
        """Seal the next batch and write it. With `overlap` (the writer task) the write goes on in a
        task of its own (`_writing`) once the batch holds the write lock, and this returns: the
        next batch is sealed on the loop while this one is on the writer's thread (inserts, commit,
        fsync), and waits for the write lock as before, so batches are written in the order taken.
        The next batch is taken once the one in flight is committing (its rows, seal and head
        written, the commit's wait for the disk left), not before: sealing beside its inserts would
        have the two threads take the GIL from each other after every SQLite call."""
        if overlap:
            await self._until_committing()
        async with self._take_lock:
            if not self._queue and not self._outboxed:
                return
            batch = await self._next_batch()  # sealing (CPU on the loop) outside the write lock
            try:
                # The batch in flight to its end, a WAL checkpoint after it included: one waiting
                # behind a checkpoint on the writer's thread must not hold the write lock meanwhile
                # (strict events are committed at once while nothing holds it).
                if overlap:
                    await self._written()
                await self._write_lock.acquire()  # FIFO: taken before the next batch can be
                while self._strict_waiting:  # a strict batch waiting for the lock goes first
                    self._write_lock.release()
                    await asyncio.sleep(0)
                    await self._write_lock.acquire()
            except BaseException:
                self._put_back(batch)  # sealed, not written: back at the head of its queue
                raise
        if overlap:
            self._committing_now.clear()
            self._writing = asyncio.create_task(self._write_held(batch), name="privacy-audit-batch")
            return
        await self._write_held(batch)

    async def _until_committing(self) -> None:
        """Wait until the batch in flight, if any, has only its commit left (or has ended)."""
        writing = self._writing
        if writing is None or writing.done() or self._committing_now.is_set():
            return
        committing = asyncio.ensure_future(self._committing_now.wait())
        try:
            await asyncio.wait((writing, committing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            committing.cancel()

    def _put_back(self, batch: list[_Item]) -> None:
        """A batch taken off the queues but never written (its writer was cancelled): back where it
        came from, in order (stop() then spools what is queued)."""
        self._outboxed.extendleft(reversed([item for item in batch if item.outbox]))
        self._queue.extendleft(reversed([item for item in batch if not item.outbox]))

    async def _written(self) -> None:
        """Wait for the batch the writer task has in flight, if any (cancelling this cancels it)."""
        writing = self._writing
        if writing is not None:
            try:
                await writing
            finally:
                self._writing = None

    async def _write_held(self, batch: Sequence[_Item]) -> None:
        """Write a batch that holds the write lock; release it, then checkpoint the WAL when due."""
        try:
            await self._write_batch(batch)
        finally:
            self._write_lock.release()
        own = self._own
        if own is not None and own.written >= _WAL_CHECKPOINT_EVENTS:
            await self._checkpoint_wal(own)
        await self._index_subjects()

    def _appended(self, own: _OwnSqlite | None, count: int) -> None:
        """Count events appended: for the subject index's steps, and through the writer's own
        connections (`own`) for the WAL checkpoint too."""
        if own is not None:
            own.written += count
        self._unindexed += count

    async def _index_subjects(self) -> None:
        """Steps of the SQLite subject index (`store/audit_subject_runs.py`), outside the write lock,
        while one is due: as many as the events appended since allow (merges keep pace with the
        trail), each in a transaction of its own of a few milliseconds, and none while a strict
        event waits; on the writer's thread, as the WAL checkpoint, or through the pool when the
        writer has no connections of its own. None while emits go to the overflow spool: draining
        it comes first. A step that fails leaves the events in the tail, where queries still find
        them; the next batch tries again."""
        if self.database.is_postgres:
            return
        steps = subject_runs.steps_due(self._unindexed, self._index_more)
        if self._spilling or not steps:
            return
        self._unindexed = 0
        self._index_more = True  # until a step says none is due: steps cut short resume after the next batch
        chain = self.log.chain
        while steps and not self._strict:
            steps -= 1
            own = self._own
            try:
                if own is not None:
                    loop = asyncio.get_running_loop()
                    step = await loop.run_in_executor(own.thread, subject_runs.step_committed, own.bulk, chain)
                else:
                    step = await self._index_step_pooled(chain)
            except (sqlite3.Error, sa_exc.SQLAlchemyError) as exc:
                logger.warning("audit subject index step postponed (%s)", exc.__class__.__name__)
                return
            self._index_more = step.more
            if not step.more:
                return

    async def _index_step_pooled(self, chain: str) -> subject_runs.Step:
        """One step through a pooled connection, on aiosqlite's thread, in the pool's transaction."""
        async with self.database.begin() as conn:
            run = await audit_sqlite.driver_thread(conn)
            if run is None:  # not aiosqlite: queries read the tail, which then holds the whole trail
                return subject_runs.Step(None, False)
            await conn.exec_driver_sql("BEGIN IMMEDIATE")  # the catalog is read under the write lock
            step: subject_runs.Step = await run(functools.partial(subject_runs.index_step, chain=chain))
            return step

    async def _checkpoint_wal(self, own: _OwnSqlite) -> None:
        """Checkpoint the WAL on the writer's thread, outside the write lock (a strict event can be
        committed meanwhile). The writer's own connections do not checkpoint at commit: that copy,
        and its fsyncs, would be inside the transaction a strict caller waits for. Counted in events,
        not commits: strict events and batches split for them are small commits."""
        own.written = 0
        try:
            await asyncio.get_running_loop().run_in_executor(
                own.thread, audit_sqlite.checkpoint_wal, own.bulk, _BULK_BUSY_TIMEOUT
            )
        except sqlite3.Error as exc:
            logger.warning("audit WAL checkpoint postponed (%s)", exc.__class__.__name__)

    async def _drain_overflow(self) -> bool:
        """Write the overflow spool in order; emits go to it until it is empty, then to the queue.

        False when the store is unavailable (the overflow stays on disk, emits keep going there)."""
        if self._overflow_unsynced:
            self._overflow_unsynced = False
            await asyncio.to_thread(self.overflow.sync)
        try:
            await self._replay_pending()  # batches spooled in an outage are older than the overflow
            while self.overflow.claim():  # on the loop thread: no emit can append to a claimed file
                with contextlib.suppress(SpoolCorruptError):
                    await self._replay(self.overflow)
        except Exception as exc:
            logger.warning("audit overflow replay postponed (%s)", exc.__class__.__name__)
            return False
        self._spilling = False
        return True

    # -- background task ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._run_batches()
        finally:
            writing, self._writing = self._writing, None
            if writing is not None and not writing.done():
                # cancelled with a batch in flight: it ends as a cancelled write does (what its
                # thread committed is settled, the rest of the batch spooled)
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writing

    async def _run_batches(self) -> None:
        while True:
            try:
                if not self._stopping and len(self._queue) < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self.flush_interval)
                self._wakeup.clear()
                while self._queue or self._outboxed:
                    # SQLite over the writer's own connections: the next batch is sealed during the
                    # commit of the one before (PostgreSQL: one batch after the other, as its
                    # appends group the takes of the chain's lock themselves)
                    await self._write_next(overlap=self._sqlite_path is not None)
                    await self._look_at_outbox()  # also under sustained load, between batches
                await self._written()
                if self._spilling and await self._drain_overflow() and self._queue:
                    continue
                if self._stopping:
                    if self._queue or self._outboxed:
                        continue  # queued while the last batch was in flight (the stop leaf among them)
                    return
                await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.error("audit writer loop error (%s)", exc.__class__.__name__)
                await asyncio.sleep(self.flush_interval)

    async def _run_strict(self) -> None:
        """The strict lane: write strict events as soon as they come, beside the bulk batches."""
        await self._start_written.wait()
        while True:
            await self._strict_wakeup.wait()
            self._strict_wakeup.clear()
            try:
                while self._strict:
                    await self._write_strict()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # _write_strict settles its callers; keep the lane alive
                logger.error("audit strict lane error (%s)", exc.__class__.__name__)
            if not self._accepting and not self._strict:
                return

    async def _write_strict(self) -> None:
        async with self._strict_lock:
            if self.database.is_postgres:
                batch = self._take_strict(self.batch_size)
                if batch:
                    await self._write_batch(batch)  # the head row lock orders it with the bulk lane
                return
            # SQLite writes take turns: wait here, not in its busy handler, and before any bulk
            # batch that is not being written yet. The events stay queued meanwhile: a bulk batch
            # that stops early for them writes them itself (`_write_queued_strict`).
            self._strict_waiting += 1
            try:
                await self._write_lock.acquire()
            finally:
                self._strict_waiting -= 1
            try:
                batch = self._take_strict(self.batch_size)
                if batch:
                    await self._write_batch(batch, strict=True)
            finally:
                self._write_lock.release()

    def _take_strict(self, limit: int) -> list[_Item]:
        batch: list[_Item] = []
        while self._strict and len(batch) < limit:
            batch.append(self._strict.popleft())
        return batch

    def _hand_over(self, taken: list[_Item]) -> list[SealedEvent]:
        """On the bulk batch's thread, once it stops for strict events: take the queued ones into
        that batch (deque pops are atomic; nothing else takes from `_strict` while the batch holds
        the write lock). `taken` tells the loop which to settle once the batch is committed."""
        events: list[SealedEvent] = []
        while self._strict and len(taken) < _ON_LOOP_MAX:
            sealed = self._strict[0].sealed
            if not isinstance(sealed, SealedEvent):
                break  # not sealed yet (never the case for emit_strict): left to the strict lane
            taken.append(self._strict.popleft())
            events.append(sealed)
        return events

    def _write_queued_strict(self, own: _OwnSqlite) -> None:
        """A bulk batch stopped early for strict events: commit them now, on this thread, before
        the rest of it (the write lock is the bulk batch's; no transaction is open)."""
        while self._strict and not self._spool_pending:
            batch = self._take_strict(_ON_LOOP_MAX)
            sealed = [item.sealed for item in batch if isinstance(item.sealed, SealedEvent)]
            try:
                result = self.log.append_sqlite(own.now, sealed)
            except Exception as exc:
                self._strict.extendleft(reversed(batch))  # the strict lane writes (or spools) them
                if not audit_sqlite.is_busy(exc):
                    logger.warning("audit strict write failed (%s); the strict lane retries it", exc.__class__.__name__)
                return
            self._appended(own, len(sealed))
            self.metrics.written.inc(len(sealed))
            self._last_append = time.monotonic()
            self._uncheckpointed = result.checkpoint is None
            _settle(batch, None)

    async def _next_batch(self) -> list[_Item]:
        """The next batch off the queues, sealed. Cancelled at one of its turns of the loop (a stop
        that does not wait), what it took goes back to the head of its queue, sealed, in order."""
        batch: list[_Item] = []
        try:
            return await self._take_batch(batch)
        except BaseException:
            self._put_back(batch)
            raise

    async def _take_batch(self, batch: list[_Item]) -> list[_Item]:
        while self._outboxed and len(batch) < self.batch_size:  # strict events, sealed already
            item = self._outboxed.popleft()
            item.leaf = self.log.leaf_templates([item.sealed])[0] if isinstance(item.sealed, SealedEvent) else None
            batch.append(item)
        while self._queue and len(batch) < self.batch_size:
            if len(batch) % _SEAL_SLICE == _SEAL_SLICE - 1:
                await asyncio.sleep(0)  # sealing is CPU work on the loop: let requests (and strict events) in
            item = self._queue.popleft()
            if not isinstance(item.sealed, SealedEvent):
                try:
                    event = item.sealed if isinstance(item.sealed, AuditEvent) else item.sealed()
                    item.sealed = self.log.seal(event)
                except Exception as exc:  # a bad event is counted, never blocks the others
                    logger.error("audit event could not be sealed (%s)", exc.__class__.__name__)
                    self._drop(1)
                    _settle([item], exc)
                    continue
            if item.leaf is None:
                item.leaf = self.log.leaf_templates([item.sealed])[0]
            batch.append(item)
        if self._pending_drops:
            # Drops (including events that could not be sealed just now) are recorded in this batch.
            count, self._pending_drops = self._pending_drops, 0
            batch.insert(0, _Item(self.log.seal(events_dropped(count)), drops=count))
        return batch

    async def _write_batch(self, batch: Sequence[_Item], *, strict: bool = False) -> None:
        try:
            await self._store_or_spool(batch, strict)
        finally:
            self._start_written.set()

    async def _append(
        self,
        sealed: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None] | None,
        strict: bool,
        in_outbox: set[str],
    ) -> AppendResult:
        """Append one batch: on SQLite over the writer's own connections, else through the pool
        (deleting the outbox rows of `in_outbox`, PostgreSQL only, in the same transaction)."""
        own = await self._own_connections() if sealed else None
        if own is None:
            try:
                appended = await self.log.append(self.database, sealed, templates=templates, outbox=in_outbox)
                self._appended(None, appended.size - appended.first_seq)
                return appended
            except asyncio.CancelledError:
                # Cancelled (a shutdown that did not wait) with the batch in a take that may or may
                # not have committed: on disk at once, nothing else would write it (the replay skips
                # what the log already holds); events in the strict outbox are durable there already.
                self._spool_now([event for event in sealed if event.uid not in in_outbox])
                raise
        written = 0
        result: AppendResult | None = None
        try:
            if strict and len(sealed) <= _ON_LOOP_MAX:
                try:
                    result = self.log.append_sqlite(own.now, sealed, templates)
                except sqlite3.OperationalError as exc:
                    if not audit_sqlite.is_busy(exc):
                        raise
                else:
                    self._appended(own, len(sealed))
                    return result
            loop = asyncio.get_running_loop()
            while written < len(sealed):
                if written:
                    self._write_queued_strict(own)  # what the batch stopped for goes before its rest
                own.stop.clear()
                if self._strict:
                    own.stop.set()  # strict events queued already: they go in after this slice
                rest = templates[written:] if templates is not None else None
                taken: list[_Item] = []
                stop, take = (None, None) if strict else (own.stop, functools.partial(self._hand_over, taken))
                left = len(sealed) - written
                committing = None if strict else functools.partial(self._last_part_committing, loop, taken, left)
                work = functools.partial(
                    self.log.append_sqlite, own.bulk, sealed[written:], rest, stop, take, committing=committing
                )
                running = loop.run_in_executor(own.thread, work)
                try:
                    result = await asyncio.shield(running)
                except asyncio.CancelledError:
                    # the thread's commit cannot be stopped: settle what it took by how it ended, and
                    # keep the rest of the batch on disk (nothing else will write it)
                    done = await self._after_cancelled(running, taken)
                    if done is not None:
                        written += done.size - done.first_seq - len(taken)
                    self._spool_now(sealed[written:])
                    raise
                except Exception:
                    self._strict.extendleft(reversed(taken))  # not committed: the strict lane writes them
                    raise
                self._appended(own, result.size - result.first_seq)
                written += result.size - result.first_seq - len(taken)
                if taken:  # committed with this slice of the bulk batch
                    self.metrics.written.inc(len(taken))
                    _settle(taken, None)
            if not strict:
                # strict events that came during the batch's commit: written now, before the write
                # lock passes on, not after the strict lane's turns of a busy loop
                self._write_queued_strict(own)
        except Exception as exc:
            await self._close_own()  # opened again for the next batch
            if written:
                raise _PartlyWritten(written) from exc
            raise
        if result is None:
            raise ValueError("an empty batch")
        return result

    def _last_part_committing(
        self, loop: asyncio.AbstractEventLoop, taken: list[_Item], left: int, result: AppendResult
    ) -> None:
        """On the writer's thread, before a bulk commit: when it is the batch's last part (all `left`
        events, beside the strict ones it took), the writer task may seal the next batch meanwhile."""
        if result.size - result.first_seq - len(taken) >= left:
            loop.call_soon_threadsafe(self._committing_now.set)

    async def _after_cancelled(self, running: asyncio.Future[AppendResult], taken: list[_Item]) -> AppendResult | None:
        """The writer was cancelled while a bulk batch was on its thread: wait for the batch to end, so
        the strict events it took are either settled (committed with it) or handed back to the strict
        lane, never left with their callers waiting for an answer that cannot come. The batch's
        result, or None when it failed."""
        try:
            result = await running
        except Exception:
            self._strict.extendleft(reversed(taken))
            return None
        if taken:
            self.metrics.written.inc(len(taken))
            _settle(taken, None)
        return result

    def _spool_now(self, events: Sequence[SealedEvent]) -> None:
        """Spool on this thread, at once: the writer is being cancelled and cannot wait for a turn."""
        if not events:
            return
        try:
            self.spool.append(events)
        except OSError as exc:
            logger.error("audit spool unwritable (%s); %d events lost", exc.__class__.__name__, len(events))
            self._drop(len(events))
            return
        self._spool_pending = True
        self.metrics.spooled.inc(len(events))

    async def _own_connections(self) -> _OwnSqlite | None:
        if self._own is None and self._sqlite_path is not None:
            try:
                self._own = await asyncio.to_thread(
                    _OwnSqlite, self._sqlite_path, self.database.sqlite_pragmas, self.database.sqlite_audit_cache_mb
                )
            except (OSError, sqlite3.Error) as exc:
                logger.warning("audit writer's own SQLite connections not opened (%s)", exc.__class__.__name__)
        return self._own

    async def _close_own(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            try:
                await asyncio.to_thread(own.close)
            except (OSError, sqlite3.Error) as exc:
                logger.warning("audit writer's own SQLite connections not closed (%s)", exc.__class__.__name__)

    async def _store_or_spool(self, batch: Sequence[_Item], strict: bool = False) -> None:
        sealed = [item.sealed for item in batch if isinstance(item.sealed, SealedEvent)]
        ready = len(sealed) == len(batch) and all(item.leaf is not None for item in batch)
        templates = [item.leaf for item in batch] if ready else None
        in_outbox = {item.sealed.uid for item in batch if item.outbox and isinstance(item.sealed, SealedEvent)}
        try:
            # Whichever lane writes first after an outage replays the spool first: a batch written
            # past it would put newer events ahead of the spooled ones (and leave those on disk).
            await self._replay_pending()
            result = await self._append(sealed, templates, strict, in_outbox)
            self.metrics.written.inc(len(sealed) - result.skipped)
            self._last_append = time.monotonic()
            self._uncheckpointed = result.checkpoint is None
            _settle(batch, None)
        except Exception as exc:
            if isinstance(exc, _PartlyWritten):  # the first part is in the store: spool the rest
                self.metrics.written.inc(exc.written)
                if len(sealed) == len(batch):
                    batch = batch[exc.written :]
                sealed = sealed[exc.written :]
                exc = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            self.log.forget_partitions()
            if in_outbox:  # durable in the outbox already: appended from there once the store answers
                sealed = [event for event in sealed if event.uid not in in_outbox]
                batch = [item for item in batch if not item.outbox]
            logger.warning("audit store unavailable (%s); spooling %d events", exc.__class__.__name__, len(sealed))
            try:
                async with self._spool_lock:
                    await asyncio.to_thread(self.spool.append, sealed)
            except OSError as spool_exc:
                logger.error("audit spool unwritable (%s)", spool_exc.__class__.__name__)
                lost = sum(1 for item in batch if item.drops == 0)
                self._pending_drops += sum(item.drops for item in batch)
                self._drop(lost)
                _settle(batch, spool_exc)
                return
            self._spool_pending = True
            self._last_replay_try = time.monotonic()
            self.metrics.spooled.inc(len(sealed))
            _settle(batch, None)

    async def replay_spool(self) -> int:
        """Replay spooled batches in order; raises SpoolCorruptError (after replaying the rest)."""
        async with self._replay_lock:
            return await self._replay()

    async def _replay_pending(self) -> None:
        """Replay the outage spool if it holds anything (one replayer at a time).

        A corrupt spool is reported by _replay (its readable records are in the log); a store
        error propagates and the spool stays on disk for the next try."""
        if not self._spool_pending:
            return
        async with self._replay_lock:
            if self._spool_pending:  # another lane may have replayed it while this one waited
                with contextlib.suppress(SpoolCorruptError):
                    await self._replay()

    async def _replay(self, spool: Spool | None = None) -> int:
        outage = spool is None
        spool = self.spool if spool is None else spool
        replayed = 0
        corrupt: SpoolCorruptError | None = None
        try:
            while True:
                if outage:
                    # Cleared before each take: a batch spooled after the take sets it again, so
                    # none spooled while the last file was replayed is left on disk unnoticed.
                    self._spool_pending = False
                contents = await asyncio.to_thread(spool.take if outage else spool.read)
                if contents is None:
                    break
                replayed += await self._replay_contents(contents)
                kept = await asyncio.to_thread(spool.finish, contents)
                if contents.bad and corrupt is None:
                    corrupt = SpoolCorruptError(contents.path, contents.bad[0][0], len(contents.bad), kept)
                if not outage:
                    break  # the caller claims the next overflow file on the loop thread
        except BaseException:
            if outage:
                self._spool_pending = True  # the claimed file stays on disk for the next try
            raise
        self._last_append = time.monotonic()
        self._uncheckpointed = True
        if corrupt is not None:
            self.spool_errors.append(corrupt)
            logger.error("%s", corrupt)
            finding = detection_finding(
                "spool_corrupt",
                title="audit spool had unreadable records",
                related={
                    "file": corrupt.path.name,
                    "first_bad_line": corrupt.first_bad_line,
                    "count": corrupt.bad_lines,
                },
            )
            self._queue.appendleft(_Item(self.log.seal(finding)))
            raise corrupt
        return replayed

    async def _replay_contents(self, contents: SpoolContents) -> int:
        seen: set[str] = set()
        replayed = 0
        for start in range(0, len(contents.events), self.batch_size):
            chunk = []
            for event in contents.events[start : start + self.batch_size]:
                if event.uid not in seen:  # the same event spooled twice is replayed once
                    seen.add(event.uid)
                    chunk.append(event)
            try:
                written = await self._append_new(chunk)
            except Exception as exc:
                self.log.forget_partitions()  # a partition missing for the rows is created on the retry
                if not _is_poison(exc):
                    raise
                written = await self._append_one_by_one(chunk)
            replayed += written
            self.metrics.replayed.inc(written)
        return replayed

    async def _append_new(self, events: Sequence[SealedEvent]) -> int:
        """Append the events the store does not hold yet (replay is idempotent by event id)."""
        await self.log.prepare(self.database)
        async with self.database.begin() as conn:
            stored = await existing_uids(conn, [e.uid for e in events])
            fresh = [e for e in events if e.uid not in stored]
            if fresh:
                await self.log.append_in(self.database, conn, fresh)
        return len(fresh)

    async def _append_one_by_one(self, events: Sequence[SealedEvent]) -> int:
        """A batch the store refused as data: find the record(s) it refuses and set them aside,
        so one bad record cannot hold every later event in the spool for ever."""
        written = 0
        rejected: list[SealedEvent] = []
        for event in events:
            try:
                written += await self._append_new([event])
            except Exception as exc:
                if not _is_poison(exc):
                    raise
                rejected.append(event)
        if rejected:
            kept = await asyncio.to_thread(self.spool.quarantine, rejected)
            logger.error("audit store refused %d spooled event(s); kept in %s", len(rejected), kept)
            self._drop(len(rejected))
        return written

    async def append_outbox(self) -> int:
        """PostgreSQL: append to the chain the strict events left in the outbox for at least
        `outbox_claim_after` seconds (by a writer that died, or whose append failed); how many.
        The writer runs it at start and every `outbox_claim_after / 2` seconds between batches."""
        if not self._outbox:
            return 0
        await self._replay_pending()  # an outage's spool goes first, as before any write
        appended = await append_left(self.database, self.log, self.outbox_claim_after)
        if appended:
            self.metrics.written.inc(appended)
            self._last_append = time.monotonic()
            self._uncheckpointed = True
        return appended

    async def _look_at_outbox(self) -> None:
        """Append the outbox rows other writers left, when due (every `outbox_claim_after / 2` s)."""
        now = time.monotonic()
        if not self._outbox or now - self._last_outbox_look < self.outbox_claim_after / 2:
            return
        self._last_outbox_look = now
        try:
            await self._written()  # the batch in flight first: spooled events go before anything newer
            await self.append_outbox()
        except Exception as exc:
            logger.warning("audit outbox look postponed (%s)", exc.__class__.__name__)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if self._own is not None and self._own.written:
            await self._checkpoint_wal(self._own)  # what was committed since the last one, while idle
        if self._own is not None:  # (through the pool: after the next batch, not on an idle pool)
            await self._index_subjects()
        if self._spool_pending and now - self._last_replay_try >= self.retry_interval:
            self._last_replay_try = now
            try:
                await self._replay_pending()
            except Exception as exc:
                logger.warning("audit spool replay postponed (%s)", exc.__class__.__name__)
        await self._look_at_outbox()
        if self._uncheckpointed and now - self._last_checkpoint_try >= self.log.checkpoint_interval:
            self._last_checkpoint_try = now
            try:
                if await self.log.checkpoint(self.database) is not None:
                    self._uncheckpointed = False
            except Exception as exc:
                logger.warning("audit checkpoint postponed (%s)", exc.__class__.__name__)
        if now - self._last_append >= self.log.heartbeat_interval and not self._queue:
            self._last_append = now
            self._queue.append(_Item(self.log.seal(lifecycle("heartbeat"))))
            self._wakeup.set()


def _time_out(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _settle(batch: Sequence[_Item], error: BaseException | None) -> None:
    for item in batch:
        if item.future is not None and not item.future.done():
            if error is None:
                item.future.set_result(None)
            else:
                item.future.set_exception(_unavailable())
