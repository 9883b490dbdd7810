"""The append-only, tamper-evident log: one sequencer per chain, RFC 6962 leaves, signed checkpoints.

`append` runs one transaction per batch: take the chain lock, read the head (size + frontier),
insert the leaves and their side records, update the head, and sign a checkpoint when the
cadence says so (every `checkpoint_every` leaves, after `checkpoint_interval` seconds, or when a
lifecycle leaf asks for one). Several writers or instances can call it at once; the lock makes
them take turns, so indices never fork or repeat.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..keyfiles import load_or_create_signing_key
from ..store import Database
from ..store.audit import (
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
)
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
from .merkle import Frontier, leaf_hash
from .sealing import SealedEvent, SideRecordSealer

_FORCE_CHECKPOINT = frozenset({"log.start", "log.stop", "log.heartbeat", "log.key_rotation", "log.retention_purge"})


def canonical_leaf(doc: dict[str, object], chain: str, seq: int) -> bytes:
    """Sorted-key compact JSON (RFC 8785 for our value domain: ASCII keys, no floats)."""
    return orjson.dumps({**doc, "chain": chain, "seq": seq}, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class AppendResult:
    first_seq: int
    size: int
    checkpoint: Checkpoint | None


def _now_us() -> int:
    return time.time_ns() // 1000


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
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", chain):
            raise ValueError("chain must be a short lower-case name (at most 64 characters)")
        if checkpoint_every < 1 or checkpoint_interval <= 0 or heartbeat_interval <= 0:
            raise ValueError("checkpoint cadence and heartbeat interval must be positive")
        self.chain = chain
        self.origin = origin
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.heartbeat_interval = heartbeat_interval
        self.sealer = SideRecordSealer(side_record_key)
        self._signing_key = load_or_create_signing_key(signing_key_path)
        self._registered: set[str] = set()

    def __repr__(self) -> str:
        return f"AuditLog(chain={self.chain!r}, key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        return key_id(self._signing_key.public_key())

    def public_key_pem(self) -> bytes:
        return public_key_pem(self._signing_key.public_key())

    def seal(self, event: AuditEvent) -> SealedEvent:
        return self.sealer.seal(event)

    async def append(self, database: Database, events: Sequence[SealedEvent]) -> AppendResult:
        async with database.begin() as conn:
            return await self.append_in(database, conn, events)

    async def append_in(
        self,
        database: Database,
        conn: AsyncConnection,
        events: Sequence[SealedEvent],
        *,
        force_checkpoint: bool = False,
    ) -> AppendResult:
        """Append inside the caller's transaction (retention uses this to purge atomically)."""
        head = await lock_chain(conn, self.chain, postgres=database.is_postgres, now_us=_now_us())
        now = _now_us()  # read under the lock, so checkpoint times follow the sequence
        first = head.size
        frontier = Frontier(head.size, head.frontier)
        rows: list[tuple[object, ...]] = []
        side_rows: list[tuple[object, ...]] = []
        subject_rows: list[tuple[object, ...]] = []
        force = force_checkpoint
        chain = self.chain
        dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS
        for sealed in events:
            seq = frontier.size
            doc = sealed.doc
            leaf = dumps({**doc, "chain": chain, "seq": seq}, option=sort_keys)  # canonical_leaf, inlined
            digest = leaf_hash(leaf)
            frontier.append(digest)
            uid = doc["uid"]
            rows.append(
                (
                    chain,
                    seq,
                    uid,
                    doc["time_us"],
                    doc["kind"],
                    doc["class_uid"],
                    doc.get("subject"),
                    doc.get("principal"),
                    leaf,
                    digest,
                )
            )
            listed = doc["detail"].get("subjects") if doc.get("subject") is None else None
            if isinstance(listed, list):
                subject_rows.extend((chain, seq, s) for s in listed)
            record = sealed.side
            if record is not None:
                side_rows.append((record.ref, chain, uid, record.salt, record.blob, doc["time_us"]))
            force = force or doc["kind"] in _FORCE_CHECKPOINT
        await insert_tuples(conn, audit_events, EVENT_COLUMNS, rows)
        await insert_tuples(conn, audit_side_records, SIDE_COLUMNS, side_rows)
        await insert_tuples(conn, audit_event_subjects, SUBJECT_COLUMNS, subject_rows)
        head.size = frontier.size
        head.frontier = frontier.nodes
        if rows:
            head.last_leaf_us = now
        checkpoint = None
        if head.size > head.checkpoint_size and (
            force
            or head.size - head.checkpoint_size >= self.checkpoint_every
            or now - head.checkpoint_us >= self.checkpoint_interval * 1_000_000
        ):
            checkpoint = await self._checkpoint(conn, head, frontier, now)
        await save_head(conn, head)
        return AppendResult(first_seq=first, size=head.size, checkpoint=checkpoint)

    async def checkpoint(self, database: Database, *, force: bool = False) -> Checkpoint | None:
        """Sign the current head if it has leaves no checkpoint covers yet (and it is due, unless forced)."""
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
        if kid not in self._registered:
            await register_signing_key(conn, kid, self.public_key_pem().decode(), now)
            self._registered.add(kid)
        when = datetime.fromtimestamp(now / 1_000_000, UTC)
        checkpoint = sign_checkpoint(self._signing_key, self.origin, head.size, frontier.root(), when)
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
