"""The append-only, tamper-evident log: one sequencer per chain, RFC 6962 leaves, batch seals, checkpoints.

`append` runs one transaction per batch. Everything that does not need the batch's place in the
log happens before the chain lock: each leaf is serialised with a placeholder index, side records
are inserted. Then, holding the lock (the head row), the sequencer reads the head, writes the index
into each leaf, hashes the leaves, inserts them, signs one seal for the whole batch (its Merkle root
and the new tree head) and stores it with the new head. A C2SP checkpoint is signed too when the
cadence says so (every `checkpoint_every` leaves, after `checkpoint_interval` seconds, or when a
lifecycle leaf asks for one). Several writers or instances can call it at once; the lock makes them
take turns for the short part only, so indices never fork or repeat and throughput grows with them.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..keyfiles import load_or_create_signing_key
from ..store import Database, audit_outbox
from ..store import audit_sqlite as sqlite
from ..store.audit import (
    BATCH_COLUMNS,
    EVENT_COLUMNS,
    SIDE_COLUMNS,
    SUBJECT_COLUMNS,
    ChainHead,
    audit_checkpoints,
    audit_event_subjects,
    audit_events,
    audit_side_records,
    audit_signing_keys,
    insert_tuples,
    lock_chain,
    read_head,
    register_signing_key,
    save_head,
    save_head_and_seal,
)
from ..store.audit_partitions import ensure_partitions, is_partitioned
from ..store.audit_sqlite import driver_thread as sqlite_thread
from .batches import BatchSeal, BatchSigner
from .checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    key_id,
    load_public_key,
    public_key_pem,
    sign_checkpoint,
    verify_checkpoint,
)
from .events import AuditEvent, lifecycle
from .merkle import Frontier, batch_root, leaf_hash
from .sealing import SealedEvent, SideRecordSealer

_FORCE_CHECKPOINT = frozenset(
    {"log.start", "log.stop", "log.heartbeat", "log.key_rotation", "log.retention_purge", "log.retention_drop"}
)


def canonical_leaf(doc: dict[str, object], chain: str, seq: int) -> bytes:
    """Sorted-key compact JSON (RFC 8785 for our value domain: ASCII keys, no floats)."""
    return orjson.dumps({**doc, "chain": chain, "seq": seq}, option=orjson.OPT_SORT_KEYS)


# 2**53 + 1: an index no leaf can hold (events.py keeps integers within 2**53), so it marks the
# place of `seq` in a leaf serialised before the sequencer knows it.
_SEQ_MARK = 2**53 + 1
_SEQ_FIELD = b'"seq":' + str(_SEQ_MARK).encode()
_SERIALISE_SLICE = 128
_SQLITE_SLICE = 100  # events inserted between two looks at `append_sqlite`'s stop flag
_RECHECK_US = 60_000_000  # an unpartitioned store is looked at again after this long


def leaf_template(doc: dict[str, object], chain: str) -> tuple[bytes, bytes] | None:
    """The canonical leaf split around its index: `head + b"%d" % seq + tail == canonical_leaf(...)`.

    None when the marker is not found exactly once (a document that holds it itself): the
    sequencer then serialises that leaf whole."""
    parts = orjson.dumps({**doc, "chain": chain, "seq": _SEQ_MARK}, option=orjson.OPT_SORT_KEYS).split(_SEQ_FIELD)
    if len(parts) != 2:
        return None
    return parts[0] + b'"seq":', parts[1]


@dataclass(slots=True)
class _PgAppend:
    """An append waiting for its process's next take of the PostgreSQL head row's lock."""

    events: Sequence[SealedEvent]
    templates: Sequence[tuple[bytes, bytes] | None]
    side_rows: list[tuple[object, ...]]
    force: bool
    # settled by the append that took it: its result, its error, or None ("lead the next take")
    outcome: asyncio.Future[AppendResult | None]
    outbox: Collection[str] = ()  # uids of its events that wait in the strict outbox

    def without(self, gone: set[str]) -> _PgAppend:
        """This append less the outbox events another writer claimed (they are its to append)."""
        keep = [n for n, event in enumerate(self.events) if event.doc["uid"] not in gone]
        return replace(
            self,
            events=[self.events[n] for n in keep],
            templates=[self.templates[n] for n in keep],
            side_rows=[row for row in self.side_rows if row[2] not in gone],
        )


@dataclass(frozen=True, slots=True)
class AppendResult:
    first_seq: int
    size: int
    checkpoint: Checkpoint | None
    seal: BatchSeal | None = None
    # events of the caller's append left out: their outbox rows another writer had claimed (that
    # writer appends and counts them)
    skipped: int = 0


def _less(result: AppendResult, skipped: int) -> AppendResult:
    """`result` as one append of a shared take sees it: less its events another writer appended."""
    return replace(result, skipped=skipped) if skipped else result


def _now_us() -> int:
    return time.time_ns() // 1000


T = TypeVar("T")


def _committed(
    work: Callable[[sqlite3.Connection], T],
    db: sqlite3.Connection,
    committing: Callable[[T], None] | None = None,
) -> T:
    """Run `work` in a transaction of its own on a plain sqlite3 connection: commit, or roll back.
    `committing` is called with what `work` returned, just before the commit (which may still fail)."""
    if db.in_transaction:
        raise sqlite3.OperationalError("a transaction is already open on this connection")
    db.execute("BEGIN IMMEDIATE")  # explicit, whatever the connection's isolation level
    try:
        result = work(db)
        if committing is not None:
            committing(result)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return result


class AuditLog:
    """Owns the signing key and the side-record sealer for one chain."""

    def __init__(
        self,
        signing_key_path: str | os.PathLike[str],
        side_record_key: bytes,
        *,
        chain: str = "default",
        origin: str = "privacy-middleware/audit",
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 60.0,
        heartbeat_interval: float = 3600.0,
        partition_seconds: float = 7 * 86_400.0,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", chain):
            raise ValueError("chain must be a short lower-case name (at most 64 characters)")
        if checkpoint_every < 1 or checkpoint_interval <= 0 or heartbeat_interval <= 0 or partition_seconds < 1:
            raise ValueError("checkpoint cadence, heartbeat interval and partition period must be positive")
        self.partition_us = int(partition_seconds * 1_000_000)
        self._partitions_until: int | None = None  # PostgreSQL: partitions exist up to this sealing time
        self.chain = chain
        self.origin = origin
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.heartbeat_interval = heartbeat_interval
        self.sealer = SideRecordSealer(side_record_key)
        self._signing_key = load_or_create_signing_key(signing_key_path)
        self._batch_signer = BatchSigner(self._signing_key, origin)
        self._registered: set[str] = set()
        self._pg_appends: deque[_PgAppend] = deque()  # PostgreSQL: waiting for this process's next take
        self._pg_taking = False  # an append of this process is taking (or about to take) the lock

    def __repr__(self) -> str:
        return f"AuditLog(chain={self.chain!r}, key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        return key_id(self._signing_key.public_key())

    def public_key_pem(self) -> bytes:
        return public_key_pem(self._signing_key.public_key())

    def seal(self, event: AuditEvent) -> SealedEvent:
        return self.sealer.seal(event)

    def leaf_templates(self, events: Sequence[SealedEvent]) -> list[tuple[bytes, bytes] | None]:
        """Serialise leaves ahead of `append` (the writer does it while sealing, outside its write lock)."""
        chain = self.chain
        return [leaf_template(sealed.doc, chain) for sealed in events]

    async def append(
        self,
        database: Database,
        events: Sequence[SealedEvent],
        *,
        templates: Sequence[tuple[bytes, bytes] | None] | None = None,
        outbox: Collection[str] = (),
    ) -> AppendResult:
        """Append one batch in a transaction of its own; `templates` from `leaf_templates(events)`.

        `outbox` (PostgreSQL) names events of the batch committed to the strict outbox: the append
        deletes their rows in its transaction, and leaves out any whose row another writer holds or
        has already appended (exactly once)."""
        await self.prepare(database)
        await self.register_key(database)
        if not database.is_postgres:
            async with database.connect() as conn:
                run = await sqlite_thread(conn)
                if run is not None:
                    # SQLite: the whole transaction, commit included, in one call on the driver's
                    # thread (a commit through SQLAlchemy is one more trip through the event loop).
                    templates, side_rows, force = await self._serialise(events, templates, False)
                    work = functools.partial(self._append_sqlite, events, templates, side_rows, force)
                    result: AppendResult = await run(functools.partial(_committed, work))
                    return result
        if not events:
            async with database.begin() as conn:
                return await self.append_in(database, conn, events, templates=templates)
        return await self._append_postgres(database, events, templates, outbox)

    async def _append_postgres(
        self,
        database: Database,
        events: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None] | None,
        outbox: Collection[str] = (),
    ) -> AppendResult:
        """PostgreSQL: the appends of this process take the head row's lock one at a time, and each
        take carries every append of the process waiting at that moment, including those that came
        while it waited for the lock: one lock take, one seal and one commit for all of them.

        With several writers the lock is what they queue for, and each take costs about the same
        whatever its size (round trips, each waiting for a turn of a busy event loop): a strict
        event that comes while its process waits for the lock rides with that take instead of
        queueing for one of its own behind the other writers (and a bulk batch does not wait
        behind the strict take of its own process). Positions are still assigned only under the
        lock, so the chain can neither fork nor have a gap. If the take fails, every append in it
        fails (each caller spools its own events, as before)."""
        templates, side_rows, force = await self._serialise(events, templates, False)
        mine = _PgAppend(events, templates, side_rows, force, asyncio.get_running_loop().create_future(), outbox)
        self._pg_appends.append(mine)
        if self._pg_taking:
            outcome = await mine.outcome
            if outcome is not None:
                return outcome  # another append's take carried this one
        self._pg_taking = True  # this append leads the next take (it is in it: the queue is taken whole)
        handed = False
        try:
            result = await self._take_postgres(database, mine)
            while self._pg_appends and not (handed := self._hand_over()):
                await self._take_postgres(database, None)  # appends whose callers stopped waiting
            return result
        finally:
            if not handed and self._pg_appends and not self._hand_over():
                self._pg_appends.clear()  # after a failed take: only appends whose callers are gone
            if not self._pg_appends:
                self._pg_taking = False

    def _hand_over(self) -> bool:
        """Let the first waiting append whose caller still waits lead the next take."""
        for waiting in self._pg_appends:
            if not waiting.outcome.done():
                waiting.outcome.set_result(None)
                return True
        return False

    async def _take_postgres(self, database: Database, mine: _PgAppend | None) -> AppendResult:
        """One take of the head row's lock for every append waiting now or while the lock is awaited."""
        early = list(self._pg_appends)
        self._pg_appends.clear()
        late: list[_PgAppend] = []
        try:
            async with database.begin() as conn:
                # side records before the lock, as append_in does
                taken = await self._take_outbox(conn, early)
                side_rows = [row for append in taken for row in append.side_rows]
                await insert_tuples(conn, audit_side_records, SIDE_COLUMNS, side_rows)
                head = await lock_chain(conn, self.chain, postgres=True, now_us=_now_us())
                # came while the lock was awaited: they ride along, except those with outbox rows
                # (deleting them would be one more round trip under the lock; they lead the next take)
                late = [append for append in self._pg_appends if not append.outbox]
                deferred = [append for append in self._pg_appends if append.outbox]
                self._pg_appends.clear()
                self._pg_appends.extend(deferred)
                late_rows = [row for append in late for row in append.side_rows]
                await insert_tuples(conn, audit_side_records, SIDE_COLUMNS, late_rows)
                served = early + late
                events = [event for append in taken + late for event in append.events]
                templates = [template for append in taken + late for template in append.templates]
                force = any(append.force for append in served)
                result = await self._append_locked(conn, head, events, templates, force)
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else RuntimeError("the audit append was cancelled")
            for append in early + late:
                if append is not mine and not append.outcome.done():
                    append.outcome.set_exception(error)
            raise
        skipped = {
            id(before): len(before.events) - len(after.events) for before, after in zip(early, taken, strict=True)
        }
        for append in served:
            if append is not mine and not append.outcome.done():
                append.outcome.set_result(_less(result, skipped.get(id(append), 0)))
        return _less(result, skipped.get(id(mine), 0))

    async def _take_outbox(self, conn: AsyncConnection, appends: list[_PgAppend]) -> list[_PgAppend]:
        """Delete the outbox rows of these appends' strict events in this transaction; an event whose
        row another writer holds (or already appended) is left out: that writer appends it."""
        uids = [uid for append in appends for uid in append.outbox]
        if not uids:
            return appends
        gone = set(uids) - await audit_outbox.take(conn, uids)
        return [append.without(gone) if gone else append for append in appends]

    def append_sqlite(
        self,
        db: sqlite3.Connection,
        events: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None] | None = None,
        stop: threading.Event | None = None,
        take: Callable[[], Sequence[SealedEvent]] | None = None,
        committing: Callable[[AppendResult], None] | None = None,
    ) -> AppendResult:
        """SQLite: `append` on a plain sqlite3 connection, in the calling thread, in a transaction of
        its own (the writer's own connections; the same rows and seal as `append`). `committing`
        is called with the result once the rows, seal and head are written, before the commit.

        With `stop`, the events are inserted `_SQLITE_SLICE` at a time, and once `stop` is set the
        batch ends after the current slice: the events inserted so far are sealed and committed, and
        the result says how many (`size - first_seq`); the caller appends the rest later. With `take`
        too, the events it returns then are appended after that slice, under the same seal and in the
        same commit (the strict events a stop was set for: one commit and one fsync for both)."""
        kid = self.key_id
        if kid not in self._registered:
            pem = self.public_key_pem().decode()
            _committed(functools.partial(sqlite.register_signing_key, key_id=kid, public_pem=pem, now_us=_now_us()), db)
            self._registered.add(kid)
        if templates is None:
            templates = self.leaf_templates(events)
        elif len(templates) != len(events):
            raise ValueError("one leaf template per event")
        return _committed(functools.partial(self._append_sqlite_slices, events, templates, stop, take), db, committing)

    def _append_sqlite_slices(
        self,
        events: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None],
        stop: threading.Event | None,
        take: Callable[[], Sequence[SealedEvent]] | None,
        db: sqlite3.Connection,
    ) -> AppendResult:
        """`_append_sqlite`, inserting a slice at a time and ending early once `stop` is set (with
        what `take` returns then appended last)."""
        chain = self.chain
        head = sqlite.lock_chain(db, chain, _now_us())
        now = max(_now_us(), head.last_leaf_us)
        first = head.size
        frontier = Frontier(head.size, head.frontier)
        hashes: list[bytes] = []
        force = False
        step = len(events) if stop is None else _SQLITE_SLICE
        done = 0
        while done < len(events):
            part = events[done : done + step]
            force = self._insert_sqlite(db, part, templates[done : done + step], first + done, now, hashes, force)
            done += len(part)
            if stop is not None and stop.is_set():
                break
        extra = take() if take is not None and stop is not None and stop.is_set() else ()
        if extra:
            force = self._insert_sqlite(db, extra, self.leaf_templates(extra), first + done, now, hashes, force)
        frontier.extend(hashes)
        return self._finish_sqlite(db, head, frontier, hashes, first, now, force)

    def _insert_sqlite(
        self,
        db: sqlite3.Connection,
        events: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None],
        seq: int,
        now: int,
        hashes: list[bytes],
        force: bool,
    ) -> bool:
        """Insert one slice numbered from `seq`, add its leaf hashes to `hashes`; whether a leaf so far
        asks for a checkpoint."""
        side_rows, force = self._side_rows(events, force)
        sqlite.insert_many(db, sqlite.INSERT_SIDE, side_rows)
        rows, subject_rows, part_hashes = self._rows(events, templates, seq, now)
        sqlite.insert_many(db, sqlite.INSERT_EVENTS, rows)
        sqlite.insert_many(db, sqlite.INSERT_SUBJECTS, subject_rows)
        hashes.extend(part_hashes)
        return force

    async def _serialise(
        self,
        events: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None] | None,
        force: bool,
    ) -> tuple[Sequence[tuple[bytes, bytes] | None], list[tuple[object, ...]], bool]:
        """Before the lock: the leaves (unless serialised ahead), the side-record rows, and whether a
        leaf asks for a checkpoint."""
        if templates is None:
            serialised: list[tuple[bytes, bytes] | None] = []
            for start in range(0, len(events), _SERIALISE_SLICE):
                if start:
                    await asyncio.sleep(0)  # CPU work on the event loop, before the lock: let other tasks in
                serialised.extend(self.leaf_templates(events[start : start + _SERIALISE_SLICE]))
            templates = serialised
        elif len(templates) != len(events):
            raise ValueError("one leaf template per event")
        side_rows, force = self._side_rows(events, force)
        return templates, side_rows, force

    def _side_rows(self, events: Sequence[SealedEvent], force: bool) -> tuple[list[tuple[object, ...]], bool]:
        """The side-record rows of a batch, and whether a leaf asks for a checkpoint."""
        chain = self.chain
        side_rows: list[tuple[object, ...]] = []
        for sealed in events:
            record = sealed.side
            if record is not None:
                side_rows.append(
                    (record.ref, chain, sealed.doc["uid"], record.salt, record.blob, sealed.doc["time_us"])
                )
            force = force or sealed.doc["kind"] in _FORCE_CHECKPOINT
        return side_rows, force

    async def register_key(self, database: Database) -> None:
        """Store this writer's public key in a committed transaction of its own, once per process.

        A checkpoint also registers it inside its own transaction, but a key remembered as stored
        there could be lost with a rollback, and later checkpoints signed by it would not verify."""
        kid = self.key_id
        if kid in self._registered:
            return
        async with database.begin() as conn:
            await register_signing_key(conn, kid, self.public_key_pem().decode(), _now_us())
        self._registered.add(kid)

    async def prepare(self, database: Database) -> None:
        """PostgreSQL: make sure the event partitions reach at least one period ahead.

        Runs in a short transaction of its own (creating a partition locks the events table), at most
        once a period per process; a no-op on SQLite. A store found not partitioned is looked at
        again a minute later (another instance may migrate it meanwhile, or the tables were not
        there yet during an outage), never taken as unpartitioned for good."""
        if not database.is_postgres:
            return
        now = _now_us()
        if self._partitions_until is not None and now + self.partition_us < self._partitions_until:
            return
        async with database.begin() as conn:
            if not await is_partitioned(conn):
                self._partitions_until = now + self.partition_us + _RECHECK_US  # nothing to create yet
                return
            self._partitions_until = await ensure_partitions(conn, now, self.partition_us)

    def forget_partitions(self) -> None:
        """After a failed append: the next `prepare` looks at the partitions again."""
        self._partitions_until = None

    async def append_in(
        self,
        database: Database,
        conn: AsyncConnection,
        events: Sequence[SealedEvent],
        *,
        force_checkpoint: bool = False,
        templates: Sequence[tuple[bytes, bytes] | None] | None = None,
    ) -> AppendResult:
        """Append inside the caller's transaction (retention uses this to purge atomically)."""
        chain = self.chain
        templates, side_rows, force = await self._serialise(events, templates, force_checkpoint)
        run = await sqlite_thread(conn) if not database.is_postgres else None
        if run is not None:  # SQLite: the rest of the append is one call on the driver's thread
            result: AppendResult = await run(
                functools.partial(self._append_sqlite, events, templates, side_rows, force)
            )
            return result
        await insert_tuples(conn, audit_side_records, SIDE_COLUMNS, side_rows)
        # -- the sequencer's turn -------------------------------------------------------------------
        head = await lock_chain(conn, chain, postgres=database.is_postgres, now_us=_now_us())
        return await self._append_locked(conn, head, events, templates, force)

    async def _append_locked(
        self,
        conn: AsyncConnection,
        head: ChainHead,
        events: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None],
        force: bool,
    ) -> AppendResult:
        """Holding the chain's lock (PostgreSQL): number, hash and insert the events, seal the batch,
        sign a checkpoint when due, store the seal and the new head."""
        chain = self.chain
        now = max(_now_us(), head.last_leaf_us)
        first = head.size
        rows, subject_rows, hashes, frontier = self._sequence(events, templates, head, now)
        await insert_tuples(conn, audit_events, EVENT_COLUMNS, rows)
        await insert_tuples(conn, audit_event_subjects, SUBJECT_COLUMNS, subject_rows)
        seal = self._seal_batch(head, frontier, hashes, first, now)
        checkpoint = None
        if self._checkpoint_due(head, force, now):
            checkpoint = await self._checkpoint(conn, head, frontier, now)
        if seal is None:
            await save_head(conn, head)
        else:
            batch = (chain, first, head.size, now, b"".join(head.frontier), seal.token)
            await save_head_and_seal(conn, head, dict(zip(BATCH_COLUMNS, batch, strict=True)))
        return AppendResult(first_seq=first, size=head.size, checkpoint=checkpoint, seal=seal)

    def _append_sqlite(
        self,
        events: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None],
        side_rows: list[tuple[object, ...]],
        force: bool,
        db: sqlite3.Connection,
    ) -> AppendResult:
        """`append_in` after serialisation, on SQLite's driver thread: the same statements, one hop."""
        chain = self.chain
        sqlite.insert_many(db, sqlite.INSERT_SIDE, side_rows)
        head = sqlite.lock_chain(db, chain, _now_us())
        now = max(_now_us(), head.last_leaf_us)
        first = head.size
        rows, subject_rows, hashes, frontier = self._sequence(events, templates, head, now)
        sqlite.insert_many(db, sqlite.INSERT_EVENTS, rows)
        sqlite.insert_many(db, sqlite.INSERT_SUBJECTS, subject_rows)
        return self._finish_sqlite(db, head, frontier, hashes, first, now, force)

    def _finish_sqlite(
        self,
        db: sqlite3.Connection,
        head: ChainHead,
        frontier: Frontier,
        hashes: list[bytes],
        first: int,
        now: int,
        force: bool,
    ) -> AppendResult:
        """Seal the batch, sign a checkpoint when due, store the seal and the new head (SQLite)."""
        chain = self.chain
        seal = self._seal_batch(head, frontier, hashes, first, now)
        checkpoint = None
        if self._checkpoint_due(head, force, now):
            kid = self.key_id
            if kid not in self._registered:  # in this transaction: remembered only once committed
                sqlite.register_signing_key(db, kid, self.public_key_pem().decode(), now)
            checkpoint = self._sign_checkpoint(head, frontier, now)
            db.execute(sqlite.INSERT_CHECKPOINT, (chain, head.size, checkpoint.root, now, kid, checkpoint.note))
        if seal is not None:
            db.execute(sqlite.INSERT_BATCH, (chain, first, head.size, now, b"".join(head.frontier), seal.token))
        sqlite.save_head(db, head)
        return AppendResult(first_seq=first, size=head.size, checkpoint=checkpoint, seal=seal)

    def _sequence(
        self,
        events: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None],
        head: ChainHead,
        now: int,
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[bytes], Frontier]:
        """Number the leaves from the head, hash them and extend the tree (CPU only, under the lock)."""
        rows, subject_rows, hashes = self._rows(events, templates, head.size, now)
        frontier = Frontier(head.size, head.frontier)
        frontier.extend(hashes)
        return rows, subject_rows, hashes, frontier

    def _rows(
        self,
        events: Sequence[SealedEvent],
        templates: Sequence[tuple[bytes, bytes] | None],
        seq: int,
        now: int,
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[bytes]]:
        """The event rows, subject rows and leaf hashes of `events`, numbered from `seq`."""
        chain = self.chain
        rows: list[tuple[object, ...]] = []
        subject_rows: list[tuple[object, ...]] = []
        hashes: list[bytes] = []
        sha256 = hashlib.sha256
        for sealed, template in zip(events, templates, strict=True):
            doc = sealed.doc
            leaf = canonical_leaf(doc, chain, seq) if template is None else template[0] + b"%d" % seq + template[1]
            digest = sha256(b"\x00" + leaf).digest()  # leaf_hash, inlined
            hashes.append(digest)
            rows.append(
                (
                    chain,
                    seq,
                    doc["uid"],
                    doc["time_us"],
                    doc["kind"],
                    doc["class_uid"],
                    doc.get("subject"),
                    doc.get("principal"),
                    leaf,
                    digest,
                    now,
                )
            )
            listed = doc["detail"].get("subjects") if doc.get("subject") is None else None
            if isinstance(listed, list):
                subject_rows.extend((chain, seq, s) for s in listed)
            seq += 1
        return rows, subject_rows, hashes

    def _seal_batch(
        self, head: ChainHead, frontier: Frontier, hashes: list[bytes], first: int, now: int
    ) -> BatchSeal | None:
        """Move the head past the batch and sign its seal (None for an empty batch)."""
        head.size = frontier.size
        head.frontier = frontier.nodes
        if not hashes:
            return None
        head.last_leaf_us = now
        return self._batch_signer.seal(
            self.chain, first, len(hashes), batch_root(hashes), head.size, frontier.root(), now
        )

    def _checkpoint_due(self, head: ChainHead, force: bool, now: int) -> bool:
        return head.size > head.checkpoint_size and (
            force
            or head.size - head.checkpoint_size >= self.checkpoint_every
            or now - head.checkpoint_us >= self.checkpoint_interval * 1_000_000
        )

    async def checkpoint(self, database: Database, *, force: bool = False) -> Checkpoint | None:
        """Sign the current head if it has leaves no checkpoint covers yet (and it is due, unless forced)."""
        await self.register_key(database)
        async with database.begin() as conn:
            head = await lock_chain(conn, self.chain, postgres=database.is_postgres, now_us=_now_us())
            now = _now_us()
            if head.size == head.checkpoint_size:
                return None
            if not force and now - head.checkpoint_us < self.checkpoint_interval * 1_000_000:
                return None
            checkpoint = await self._checkpoint(conn, head, Frontier(head.size, head.frontier), now)
            await save_head(conn, head)
            return checkpoint

    async def _checkpoint(self, conn: AsyncConnection, head: ChainHead, frontier: Frontier, now: int) -> Checkpoint:
        kid = self.key_id
        if kid not in self._registered:  # in this transaction: remembered only once committed
            await register_signing_key(conn, kid, self.public_key_pem().decode(), now)
        checkpoint = self._sign_checkpoint(head, frontier, now)
        await conn.execute(
            audit_checkpoints.insert().values(
                chain=self.chain,
                tree_size=head.size,
                root_hash=checkpoint.root,
                time_us=now,
                key_id=kid,
                note=checkpoint.note,
            )
        )
        return checkpoint

    def _sign_checkpoint(self, head: ChainHead, frontier: Frontier, now: int) -> Checkpoint:
        """Sign the head as a C2SP checkpoint and mark it checkpointed (the caller stores the note)."""
        when = datetime.fromtimestamp(now / 1_000_000, UTC)
        checkpoint = sign_checkpoint(self._signing_key, self.origin, head.size, frontier.root(), when)
        head.checkpoint_size = head.size
        head.checkpoint_us = now
        return checkpoint

    async def rotate_signing_key(self, database: Database, new_key_path: str | os.PathLike[str]) -> str:
        """Announce the next key in a leaf signed off by the current key, then switch to it."""
        new_key = load_or_create_signing_key(new_key_path)
        announce = lifecycle(
            "key_rotation",
            old_key_id=self.key_id,
            new_key_id=key_id(new_key.public_key()),
            new_public_key=public_key_pem(new_key.public_key()).decode(),
        )
        await self.append(database, [self.seal(announce)])
        self._signing_key = new_key
        self._batch_signer = BatchSigner(new_key, self.origin)
        return self.key_id

    async def head(self, database: Database) -> ChainHead | None:
        async with database.connect() as conn:
            return await read_head(conn, self.chain)

    async def self_check(self, database: Database, *, page: int = 5000) -> str | None:
        """Recompute the tree from the stored leaves and hold it against every stored checkpoint.

        None when consistent, else a description naming the first bad index (no content). This is
        the in-process alarm; the auditor's proof is still `export` + `verify` with a key kept elsewhere.
        """
        async with database.connect() as conn:
            pems = (await conn.execute(sa.select(audit_signing_keys.c.public_pem))).scalars().all()
            notes = (
                await conn.execute(
                    sa.select(audit_checkpoints.c.tree_size, audit_checkpoints.c.note)
                    .where(audit_checkpoints.c.chain == self.chain)
                    .order_by(audit_checkpoints.c.tree_size)
                )
            ).all()
            keys = [load_public_key(p) for p in pems] + [self._signing_key.public_key()]
            checkpoints: dict[int, bytes] = {}
            for size, note in notes:
                try:
                    checkpoint = verify_checkpoint(note, keys)
                except CheckpointFormatError:
                    checkpoint = None
                if checkpoint is None or checkpoint.size != size:
                    return f"checkpoint for size {size} is not validly signed"
                checkpoints[size] = checkpoint.root
            frontier = Frontier()
            while True:
                rows = (
                    await conn.execute(
                        sa.select(audit_events.c.seq, audit_events.c.leaf, audit_events.c.leaf_hash)
                        .where(audit_events.c.chain == self.chain, audit_events.c.seq >= frontier.size)
                        .order_by(audit_events.c.seq)
                        .limit(page)
                    )
                ).all()
                if not rows:
                    break
                for seq, leaf, digest in rows:
                    if seq != frontier.size:
                        return f"index {frontier.size} is missing"
                    stored = bytes(digest)
                    if leaf is not None and leaf_hash(bytes(leaf)) != stored:
                        return f"leaf {seq} does not match its hash"
                    frontier.append(stored)
                    root = checkpoints.get(frontier.size)
                    if root is not None and root != frontier.root():
                        return f"leaves before index {frontier.size} do not match their checkpoint"
        if checkpoints and max(checkpoints) > frontier.size:
            return f"the log ends at {frontier.size} but a checkpoint covers {max(checkpoints)}"
        return None
