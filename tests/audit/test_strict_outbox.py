"""The strict outbox on PostgreSQL: `emit_strict` returns once its event is committed to the outbox,
not to the chain; the writer appends it to the chain exactly once, deleting its row in the same
transaction, and an event a killed process left there is appended by another writer."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from privacy_middleware.audit import AuditEvent, AuditLog, AuditWriter, data_access, export, verify_main
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_events
from support.audit_events import outbox_uids, sealed_login
from support.processes import reap

pytestmark = pytest.mark.anyio


def _reveal(n: int) -> AuditEvent:
    return data_access(principal="staff_1", subject=f"cust_{n}", categories=["user.financial.card"], purpose="support")


def _writer(database: Database, log: AuditLog, spool: Path, **options: float) -> AuditWriter:
    return AuditWriter(database, log, spool_dir=spool, flush_interval=0.02, registry=CollectorRegistry(), **options)


async def _chain_uids(database: Database) -> list[str]:
    async with database.connect() as conn:
        return list((await conn.execute(sa.select(audit_events.c.uid).order_by(audit_events.c.seq))).scalars())


async def _waiting(database: Database) -> list[str]:
    async with database.connect() as conn:
        return await outbox_uids(conn)


def _verifies(log: AuditLog, out: Path) -> int:
    """`privacy-middleware audit verify` on an export, with the public key given apart."""
    pem = out.parent / f"{out.name}-trusted.pem"
    pem.write_bytes(log.public_key_pem())
    return verify_main([str(out), "--public-key", str(pem)])


@pytest.fixture
async def migrated(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url)
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
async def head_held(migrated: Database, postgres_url: str, audit_log: AuditLog) -> AsyncIterator[asyncpg.Connection]:
    """Another instance holds the chain's head row (as a writer does while it appends): no append
    can reach the chain until the test rolls the holder back."""
    await audit_log.append(migrated, [audit_log.seal(sealed_login(0))])  # the chain and its head row
    holder = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    transaction = holder.transaction()
    await transaction.start()
    await holder.execute("SELECT size FROM privacy_audit_chains WHERE chain = 'default' FOR UPDATE")
    yield holder
    if not holder.is_closed():
        await holder.close()  # rolls back


async def _release(holder: asyncpg.Connection) -> None:
    await holder.execute("ROLLBACK")
    await holder.close()


@pytest.mark.postgres
async def test_a_strict_event_is_durable_in_the_outbox_when_emit_strict_returns(
    migrated: Database, head_held: asyncpg.Connection, audit_log: AuditLog, tmp_path: Path
) -> None:
    writer = _writer(migrated, audit_log, tmp_path / "spool")
    await writer.start()
    reveal = _reveal(1)
    await writer.emit_strict(reveal)  # the chain's lock is held elsewhere: this did not wait for it
    assert await _waiting(migrated) == [reveal.uid]
    assert reveal.uid not in await _chain_uids(migrated)

    await _release(head_held)
    await writer.flush()
    assert await _waiting(migrated) == []  # its row went in the transaction that appended it
    await writer.stop()
    uids = await _chain_uids(migrated)
    assert uids.count(reveal.uid) == 1
    assert writer.metrics.spooled.total == 0 and writer.metrics.dropped.total == 0
    await export(migrated, tmp_path / "export")
    assert _verifies(audit_log, tmp_path / "export") == 0


@pytest.mark.postgres
async def test_outbox_events_taken_by_the_writer_and_by_another_writer_at_once_are_appended_once(
    migrated: Database,
    head_held: asyncpg.Connection,
    audit_log: AuditLog,
    key_path: Path,
    side_key: bytes,
    tmp_path: Path,
    postgres_url: str,
) -> None:
    owner = _writer(migrated, audit_log, tmp_path / "owner")
    other_database = Database(postgres_url)
    other = _writer(other_database, AuditLog(key_path, side_key), tmp_path / "other", outbox_claim_after=0.0)
    try:
        before = len(await _chain_uids(migrated))  # what the head's fixture appended
        await owner.start()
        reveals = [_reveal(n) for n in range(20)]
        await asyncio.gather(*(owner.emit_strict(reveal) for reveal in reveals))  # at once: pooled connections too
        assert sorted(await _waiting(migrated)) == sorted(r.uid for r in reveals)
        # the other writer claims what the owner's waiting take does not hold, and waits for the lock too
        claiming = asyncio.create_task(other.append_outbox())
        await asyncio.sleep(0.2)
        await _release(head_held)
        await claiming
        await owner.flush()
        await other.append_outbox()
        await owner.stop()
        uids = await _chain_uids(migrated)
        assert [uids.count(r.uid) for r in reveals] == [1] * 20
        assert await _waiting(migrated) == []
        # each event is counted as written by the writer that appended it, once
        assert other.metrics.written.total > 0
        assert owner.metrics.written.total + other.metrics.written.total == len(uids) - before
        await export(migrated, tmp_path / "export")
        assert _verifies(audit_log, tmp_path / "export") == 0
    finally:
        await other.stop()
        await other_database.dispose()


KILLED = textwrap.dedent(
    """
    import asyncio, sys
    from prometheus_client import CollectorRegistry
    from privacy_middleware.audit import AuditLog, AuditWriter, data_access
    from privacy_middleware.store import Database

    async def main():
        url, key_path, side_key, spool = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), sys.argv[4]
        writer = AuditWriter(Database(url), AuditLog(key_path, side_key), spool_dir=spool, registry=CollectorRegistry())
        await writer.start()
        reveal = data_access(principal="staff_1", subject="cust_9", categories=["user.contact"], purpose="support")
        await writer.emit_strict(reveal)
        print(reveal.uid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.postgres
async def test_an_event_left_in_the_outbox_by_a_killed_process_is_appended_by_another_writer_once(
    migrated: Database,
    head_held: asyncpg.Connection,
    audit_log: AuditLog,
    key_path: Path,
    side_key: bytes,
    tmp_path: Path,
    postgres_url: str,
) -> None:
    args = [postgres_url, str(key_path), side_key.hex(), str(tmp_path / "killed")]
    process = subprocess.Popen([sys.executable, "-c", KILLED, *args], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        uid = (await asyncio.to_thread(process.stdout.readline)).decode().strip()
        assert uid  # emit_strict returned in the doomed process: its event is in the outbox
        process.send_signal(signal.SIGKILL)  # before its writer could append it to the chain
        await asyncio.to_thread(process.wait, 10)
    finally:
        reap(process)
    assert await _waiting(migrated) == [uid]
    await _release(head_held)

    survivor = _writer(migrated, audit_log, tmp_path / "survivor", outbox_claim_after=0.0)
    await survivor.start()  # it looks at the outbox between its batches, the first time at once
    for _ in range(1000):  # until it did (the killed backend's locks go once the server notices)
        if uid in await _chain_uids(migrated):
            break
        await asyncio.sleep(0.02)
    await survivor.append_outbox()  # a second look finds nothing more to append
    await survivor.stop()
    uids = await _chain_uids(migrated)
    assert uids.count(uid) == 1
    assert await _waiting(migrated) == []
    await export(migrated, tmp_path / "export")
    assert _verifies(audit_log, tmp_path / "export") == 0


async def test_sqlite_has_no_outbox_and_a_strict_event_is_in_the_chain_when_emit_strict_returns(
    sqlite_url: str, audit_log: AuditLog, tmp_path: Path
) -> None:
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        writer = _writer(database, audit_log, tmp_path / "spool")
        await writer.start()
        reveal = _reveal(3)
        await writer.emit_strict(reveal)
        assert reveal.uid in await _chain_uids(database)
        assert await writer.append_outbox() == 0
        await writer.stop()
        async with database.connect() as conn:
            tables = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert "privacy_audit_strict_outbox" not in tables
    finally:
        await database.dispose()
