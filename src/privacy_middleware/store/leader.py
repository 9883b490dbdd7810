"""One leader for background work (retention, erasure retries) among all instances.

PostgreSQL: a session-level `pg_try_advisory_lock` held on a dedicated connection. If the leader
dies (even `kill -9`), its connection closes, the server releases the lock and another instance
takes over on its next try. Each new leadership bumps a **term** in `privacy_leader_terms`
(fencing token): work is done under a term, and `still_leading()` checks both the lock connection
and that no later term exists, so a paused old leader that wakes up stops instead of acting twice.

SQLite (one host): an exclusive file lock next to the database plays the same part. Behind
PgBouncer in transaction mode (`PRIVACY_DATABASE__PGBOUNCER`) there is no session to hold a lock:
leadership is then a lease in the same row, renewed on every check and taken over once it expired
(`lease_seconds` after a leader died).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import Database, drop_session
from .tables import metadata

logger = logging.getLogger("privacy_middleware.store")

leader_terms = sa.Table(
    "privacy_leader_terms",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("term", sa.BigInteger, nullable=False),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    # Lease mode (PgBouncer in transaction mode has no sessions to hold a lock): Unix time the lease ends.
    sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
)


def _insert(database: Database) -> postgresql.Insert | sqlite.Insert:
    return postgresql.insert(leader_terms) if database.is_postgres else sqlite.insert(leader_terms)


def lock_id(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a leadership name."""
    return int.from_bytes(hashlib.sha256(b"privacy-leader:" + name.encode()).digest()[:8], "big", signed=True)


async def _next_term(conn: AsyncConnection, name: str, holder: str) -> int:
    now = datetime.now(UTC)
    bumped = await conn.execute(
        leader_terms.update()
        .where(leader_terms.c.name == name)
        .values(term=leader_terms.c.term + 1, holder=holder, acquired_at=now)
        .returning(leader_terms.c.term)
    )
    term = bumped.scalar()
    if term is None:
        await conn.execute(leader_terms.insert().values(name=name, term=1, holder=holder, acquired_at=now))
        term = 1
    return int(term)


async def current_term(database: Database, name: str) -> int:
    async with database.connect() as conn:
        found = await conn.execute(sa.select(leader_terms.c.term).where(leader_terms.c.name == name))
        return int(found.scalar() or 0)


class Leadership:
    """`await try_acquire()` -> term or None; `await still_leading()`; `await release()`."""

    def __init__(
        self, database: Database, name: str = "maintenance", *, holder: str | None = None, lease_seconds: float = 15.0
    ) -> None:
        self.database = database
        self.lease_seconds = lease_seconds
        self.name = name
        self.holder = holder or f"pid {os.getpid()}"
        self.term: int | None = None
        self._conn: AsyncConnection | None = None
        self._file: IO[bytes] | None = None

    async def try_acquire(self) -> int | None:
        if self.term is not None:
            return self.term
        if self.database.pgbouncer:
            return await self._acquire_lease()
        if self.database.is_postgres:
            acquired = await self._acquire_postgres()
        else:
            acquired = self._acquire_file()
        if not acquired:
            return None
        async with self.database.begin() as conn:
            self.term = await _next_term(conn, self.name, self.holder)
        logger.info("leader for %s (term %d)", self.name, self.term)
        return self.term

    async def _acquire_lease(self) -> int | None:
        now = time.time()
        async with self.database.begin() as conn:
            await conn.execute(
                _insert(self.database)
                .values(name=self.name, term=0, holder="", acquired_at=datetime.now(UTC), lease_until=0.0)
                .on_conflict_do_nothing()
            )
            taken = await conn.execute(
                leader_terms.update()
                .where(leader_terms.c.name == self.name, leader_terms.c.lease_until < now)
                .values(
                    term=leader_terms.c.term + 1,
                    holder=self.holder,
                    acquired_at=datetime.now(UTC),
                    lease_until=now + self.lease_seconds,
                )
                .returning(leader_terms.c.term)
            )
            term = taken.scalar()
        self.term = None if term is None else int(term)
        return self.term

    async def _renew_lease(self) -> bool:
        async with self.database.begin() as conn:
            renewed = await conn.execute(
                leader_terms.update()
                .where(leader_terms.c.name == self.name, leader_terms.c.term == self.term)
                .values(lease_until=time.time() + self.lease_seconds)
                .returning(leader_terms.c.term)
            )
            return renewed.scalar() is not None

    async def _acquire_postgres(self) -> bool:
        conn = await self.database.engine.connect()
        try:
            got = (await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_id(self.name)})).scalar()
            await conn.commit()  # the session lock outlives the transaction
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()  # this session holds no lock: back to the pool
            return False
        self._conn = conn
        return True

    def _acquire_file(self) -> bool:
        database = self.database.url.database
        path = Path(database if database and database != ":memory:" else ".").resolve()
        handle = open(f"{path}.{self.name}.leader", "ab")  # noqa: SIM115 - held open while leading
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    async def still_leading(self) -> bool:
        """The lock is still held and no later term was taken (the fencing check)."""
        if self.term is None:
            return False
        try:
            if self.database.pgbouncer:
                leading = await self._renew_lease()
            else:
                if self._conn is not None:
                    await self._conn.execute(sa.text("SELECT 1"))
                    await self._conn.commit()
                leading = await current_term(self.database, self.name) == self.term
        except Exception as exc:
            logger.warning("leadership check failed (%s): stepping down", type(exc).__name__)
            leading = False
        if not leading:
            await self.release()
        return leading

    async def release(self) -> None:
        if self.database.pgbouncer and self.term is not None:
            with contextlib.suppress(Exception):
                async with self.database.begin() as conn_:
                    await conn_.execute(
                        leader_terms.update()
                        .where(leader_terms.c.name == self.name, leader_terms.c.term == self.term)
                        .values(lease_until=0.0)
                    )
        conn, self._conn = self._conn, None
        await drop_session(conn)  # the session holds the lock
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()
        self.term = None


async def lead(
    leadership: Leadership,
    work: Callable[[int], Awaitable[Any]],
    *,
    interval: float,
    retry_seconds: float = 2.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Run `work(term)` every `interval` seconds while this instance leads; otherwise keep trying
    to become the leader every `retry_seconds`. Errors are logged, never end the loop."""
    stop = stop or asyncio.Event()
    try:
        while not stop.is_set():
            wait = retry_seconds
            try:
                term = await leadership.try_acquire()
                # An instance told to stop starts no work: the leadership it may have just taken
                # (the leader before it stopping too) is released in `finally`.
                if term is not None and not stop.is_set() and await leadership.still_leading():
                    await work(term)
                    wait = interval
            except Exception as exc:
                logger.error("background work failed (%s)", type(exc).__name__)
                await leadership.release()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    finally:
        await leadership.release()
