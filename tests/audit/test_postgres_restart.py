"""PostgreSQL restarted under a running writer: the pool's pre-ping gives the next strict write a
new connection, so it reaches the store (its outbox, not the spool) and its caller is answered."""

from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from privacy_middleware.audit import AuditEvent, AuditLog, AuditWriter, data_access, verify
from privacy_middleware.audit.export import export
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_events
from support.audit_events import outbox_uids

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _reveal(n: int) -> AuditEvent:
    return data_access(principal="staff_1", subject=f"cust_{n}", categories=["user.financial.card"], purpose="support")


async def _uids(database: Database) -> list[str]:
    async with database.connect() as conn:
        return list((await conn.execute(audit_events.select().with_only_columns(audit_events.c.uid))).scalars())


async def test_a_strict_write_survives_terminated_backends(
    postgres_url: str, key_path: Path, side_key: bytes, tmp_path: Path
) -> None:
    """A PostgreSQL restart (or a failover) ends every pooled connection: the next strict write
    goes to the store on a new connection, not to the spool, and the caller is answered."""
    database = Database(postgres_url)
    try:
        await database.upgrade()
        log = AuditLog(key_path, side_key, checkpoint_every=1000, checkpoint_interval=3600)
        writer = AuditWriter(
            database, log, spool_dir=tmp_path / "spool", flush_interval=0.02, registry=CollectorRegistry()
        )
        await writer.start()
        reveal = _reveal(7)
        await writer.emit_strict(reveal)
        await writer.flush()
        name = postgres_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()
        assert ended >= 1
        again = _reveal(8)
        await writer.emit_strict(again)
        assert writer.metrics.spooled.total == 0
        async with database.connect() as conn:  # durable in the store: in the chain or its outbox
            assert again.uid in await _uids(database) or await outbox_uids(conn) == [again.uid]
        await writer.flush()
        uids = await _uids(database)
        assert again.uid in uids
        await writer.stop()
        assert writer.metrics.dropped.total == 0
        await export(database, tmp_path / "export")
        report = verify(tmp_path / "export", log.public_key_pem())
        assert report.status == 0, report.reason
        assert report.verified_size == len(uids) + 1  # and the stop leaf
    finally:
        await database.dispose()
