"""The attempt ledger in the store (several instances without Redis): the rows of one attempt are
locked, decided on with the same rules as memory, and written back in one transaction."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..store.database import Database
from ..store.login_attempts import lock_counters, read_members, write_counters, write_members
from .attempts import (
    AttemptKeys,
    Book,
    Lockout,
    LoginLimits,
    Outcome,
    Reservation,
    peek_book,
    reserve_book,
    settle_book,
)


class SqlLedger:
    def __init__(self, database: Database) -> None:
        self._db = database

    @asynccontextmanager
    async def _locked(self, keys: AttemptKeys) -> AsyncIterator[tuple[Book, float]]:
        """The attempt's counters, locked until the block ends, then written back."""
        counter_keys = [k for k in (keys.pair, keys.account, keys.lock, keys.ip) if k is not None]
        now = time.time()
        async with self._db.begin() as conn:
            rows = await lock_counters(self._db, conn, [*counter_keys, keys.spray])
            stored = await read_members(conn, keys.spray)
            _, spray_expires = rows.pop(keys.spray, (0, 0.0))
            live = set(stored) if spray_expires > now else set()
            book = Book(values=rows, sets={keys.spray: (live, spray_expires)})
            yield book, now
            values = {k: book.values.get(k, (0, 0.0)) for k in counter_keys}
            members, expires = book.members(keys.spray, now)
            values[keys.spray] = (len(members), expires)
            await write_counters(self._db, conn, values)
            await write_members(self._db, conn, keys.spray, members, stored)

    async def peek(self, keys: AttemptKeys, limits: LoginLimits) -> Lockout | None:
        async with self._locked(keys) as (book, now):
            return peek_book(book, keys, limits, now)

    async def reserve(self, keys: AttemptKeys, limits: LoginLimits, *, force: bool = False) -> Reservation:
        async with self._locked(keys) as (book, now):
            return reserve_book(book, keys, limits, now, force=force)

    async def settle(
        self, keys: AttemptKeys, reservation: Reservation | None, outcome: Outcome, limits: LoginLimits
    ) -> None:
        if outcome == "failure" or (outcome == "void" and (reservation is None or not reservation.granted)):
            return  # nothing to change: no transaction
        async with self._locked(keys) as (book, now):
            settle_book(book, keys, reservation, outcome, limits, now)
