"""The strict outbox on PostgreSQL: a strict event is durable once its row is committed.

`Committer.commit` is what a strict caller waits for: one insert, committed on its own (no transaction to
open, no chain lock), so it does not wait for the chain's sequencer, which other writers and the
bulk batches hold most of the time under load. The writer then appends the event to the chain like
any other, deleting the row in the same transaction (`AuditLog.append(..., outbox=...)`). Rows left
behind by a writer that died, or whose append failed, are appended by `append_left`, which any
writer runs at start and now and then; it claims only rows older than a bound, so a live writer
normally appends its own.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ..store import Database
from ..store import audit_outbox as store
from ..store.audit import existing_uids
from ..store.database import drop_session
from .log import AuditLog
from .sealing import SealedEvent


class Committer:
    """Commits strict events to the outbox over a connection it keeps (one round trip per event).

    A strict caller's wait is its round trips, each also waiting for a turn of an event loop that
    the application and the bulk batches keep busy; a pooled connection adds the pool's liveness
    check, a second round trip. The kept connection skips it; while it is busy with another strict
    event, or after it failed (it is then dropped), a pooled connection is used instead."""

    def __init__(self, database: Database, log: AuditLog) -> None:
        self.database = database
        self.log = log
        self._conn: AsyncConnection | None = None
        self._busy = False

    async def commit(self, sealed: SealedEvent) -> None:
        """Commit the sealed event to the outbox: one statement, committed when it returns."""
        record = orjson.dumps(sealed.to_json())
        if self._busy:
            async with self.database.connect() as conn:
                await _insert(conn, self.log.chain, sealed.uid, record)
            return
        self._busy = True
        try:
            if self._conn is None:
                self._conn = await self.database.engine.connect()
            await _insert(self._conn, self.log.chain, sealed.uid, record)
        except BaseException:
            await self.close()  # a new one next time (the pool checks it then)
            raise
        finally:
            self._busy = False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        await drop_session(conn)


async def _insert(conn: AsyncConnection, chain: str, uid: str, record: bytes) -> None:
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.execute(store.INSERT, uid, chain, record)  # no transaction open: committed on its own


async def append_left(database: Database, log: AuditLog, older_than: float, *, limit: int = 500) -> int:
    """Append to the chain the outbox rows of `log`'s chain older than `older_than` seconds that no
    writer holds, deleting them in the same transaction; how many were appended.

    Rows of events the chain already holds are only deleted. Runs until no such row is left."""
    appended = 0
    await log.prepare(database)
    await log.register_key(database)
    while True:
        async with database.begin() as conn:
            rows = await store.claim(conn, log.chain, int(older_than * 1_000_000), limit)
            if not rows:
                return appended
            events = [SealedEvent.from_json(orjson.loads(record)) for _, record in rows]
            stored = await existing_uids(conn, [event.uid for event in events])
            fresh = [event for event in events if event.uid not in stored]
            await store.delete(conn, [uid for uid, _ in rows])
            if fresh:
                await log.append_in(database, conn, fresh)
        appended += len(fresh)
        if len(rows) < limit:
            return appended
