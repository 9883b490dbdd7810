"""The PostgreSQL sequencer: the appends of one process share a take of the head row's lock (those
that come while it is awaited ride along), and several instances still make one unforked chain."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from privacy_middleware.audit import AuditEvent, AuditLog, data_access, verify
from privacy_middleware.audit.export import export
from privacy_middleware.audit.sealing import SealedEvent
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_batches, audit_events, audit_side_records
from support.audit_events import sealed_login
from support.postgres import lock_waiters

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _reveal(n: int) -> AuditEvent:
    return data_access(principal="staff_1", subject=f"cust_{n}", categories=["user.financial.card"], purpose="support")


def _sealed(log: AuditLog, start: int, count: int) -> list[SealedEvent]:
    return [log.seal(sealed_login(n)) for n in range(start, start + count)]


async def _stored(database: Database) -> tuple[list[int], list[str], int, int]:
    async with database.connect() as conn:
        rows = (await conn.execute(sa.select(audit_events.c.seq, audit_events.c.uid).order_by("seq"))).all()
        sides = (await conn.execute(sa.select(sa.func.count()).select_from(audit_side_records))).scalar_one()
        seals = (await conn.execute(sa.select(sa.func.count()).select_from(audit_batches))).scalar_one()
    return [r.seq for r in rows], [r.uid for r in rows], sides, seals


async def _verified(database: Database, log: AuditLog, out: Path) -> int:
    await export(database, out)
    report = verify(out, log.public_key_pem())
    assert report.status == 0, report.reason
    assert report.unverified_tail == 0
    return report.verified_size


@pytest.fixture
async def two_instances(postgres_url: str) -> AsyncIterator[tuple[Database, Database]]:
    first, second = Database(postgres_url), Database(postgres_url)
    await first.upgrade()
    yield first, second
    await first.dispose()
    await second.dispose()


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_appends_that_come_while_the_lock_is_awaited_ride_with_that_take(
    two_instances: tuple[Database, Database], postgres_url: str, key_path: Path, side_key: bytes, tmp_path: Path
) -> None:
    first, _ = two_instances
    log = AuditLog(key_path, side_key, checkpoint_every=1000, checkpoint_interval=3600)
    await log.append(first, _sealed(log, 0, 2))
    # another instance holds the head row (as a writer does while it appends)
    holder = await asyncpg.connect(_plain_dsn(postgres_url))
    transaction = holder.transaction()
    await transaction.start()
    await holder.execute("SELECT size FROM privacy_audit_chains WHERE chain = 'default' FOR UPDATE")
    try:
        bulk = _sealed(log, 100, 40)
        big = asyncio.create_task(log.append(first, bulk))
        assert await lock_waiters(holder) == 1  # the bulk append waits for the row lock
        strict = [log.seal(_reveal(7))]
        other = _sealed(log, 300, 3)
        small = asyncio.create_task(log.append(first, strict))
        third = asyncio.create_task(log.append(first, other))
        await asyncio.sleep(0.05)
        assert not small.done() and not third.done()  # they wait for the take, not for a lock of their own
    finally:
        await transaction.rollback()
        await holder.close()
    results = await asyncio.gather(big, small, third)
    assert {(r.first_seq, r.size) for r in results} == {(2, 46)}  # one take, one seal for all three
    seqs, uids, sides, seals = await _stored(first)
    assert seqs == list(range(46))
    assert uids[2:] == [e.uid for e in bulk + strict + other]
    assert seals == 2 and sides == 45  # the reveal has no side record
    assert await _verified(first, log, tmp_path / "export") == 46


async def test_a_failed_take_fails_every_append_in_it_and_writes_nothing(
    two_instances: tuple[Database, Database], postgres_url: str, key_path: Path, side_key: bytes
) -> None:
    first, _ = two_instances
    log = AuditLog(key_path, side_key, checkpoint_every=1000, checkpoint_interval=3600)
    stored = _sealed(log, 0, 3)
    await log.append(first, stored)
    holder = await asyncpg.connect(_plain_dsn(postgres_url))
    transaction = holder.transaction()
    await transaction.start()
    await holder.execute("SELECT size FROM privacy_audit_chains WHERE chain = 'default' FOR UPDATE")
    try:
        good = asyncio.create_task(log.append(first, _sealed(log, 10, 2)))
        await asyncio.sleep(0.2)
        # the same event again: its side record is refused, and with it the whole take
        bad = asyncio.create_task(log.append(first, [stored[1]]))
        await asyncio.sleep(0.05)
    finally:
        await transaction.rollback()
        await holder.close()
    outcomes = await asyncio.gather(good, bad, return_exceptions=True)
    # refused by the store as data (a unique key), for both appends of the take
    assert all("Unique" in type(o).__name__ or "IntegrityError" in type(o).__name__ for o in outcomes), outcomes
    seqs, _, sides, _ = await _stored(first)
    assert seqs == [0, 1, 2] and sides == 3
    after = await log.append(first, _sealed(log, 20, 2))  # the next take leads again
    assert (after.first_seq, after.size) == (3, 5)
    assert await log.self_check(first) is None


async def test_instances_that_append_in_turn_and_at_once_keep_one_chain(
    two_instances: tuple[Database, Database], key_path: Path, side_key: bytes, tmp_path: Path
) -> None:
    first, second = two_instances
    one = AuditLog(key_path, side_key, checkpoint_every=7, checkpoint_interval=3600)
    two = AuditLog(key_path, side_key, checkpoint_every=7, checkpoint_interval=3600)
    turns = [(one, first, _sealed(one, 0, 5)), (two, second, _sealed(two, 100, 4)), (one, first, _sealed(one, 200, 6))]
    sizes = [await log.append(db, events) for log, db, events in turns]
    assert [(r.first_seq, r.size) for r in sizes] == [(0, 5), (5, 9), (9, 15)]

    async def burst(log: AuditLog, database: Database, base: int) -> None:
        for n in range(6):
            await asyncio.gather(
                log.append(database, _sealed(log, base + 10 * n, 8)),
                log.append(database, [log.seal(_reveal(base + n))]),
            )

    await asyncio.gather(burst(one, first, 1000), burst(two, second, 2000))
    seqs, uids, _, _ = await _stored(first)
    assert seqs == list(range(15 + 2 * 6 * 9))
    assert len(set(uids)) == len(uids)
    assert await one.self_check(first) is None
    assert await _verified(first, one, tmp_path / "export") == len(seqs)
