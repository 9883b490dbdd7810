"""A PostgreSQL audit writer cancelled while its batch waits for the chain's lock loses nothing: the
batch goes to the spool at once and the next start writes it (the take may or may not have committed;
the replay skips what the log already holds)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from privacy_middleware.audit import AuditLog, AuditWriter, verify
from privacy_middleware.audit.events import login_attempt
from privacy_middleware.audit.export import export
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_events
from support.postgres import lock_waiters

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _login(n: int) -> Any:
    return login_attempt(success=True, subject=f"cust_{n}", ip=f"192.0.2.{n % 200}", username=f"u{n}@shop.test")


async def test_a_writer_cancelled_while_its_batch_waits_for_the_lock_spools_the_batch(
    postgres_url: str, make_writer: Callable[..., AuditWriter], audit_log: AuditLog, tmp_path: Path
) -> None:
    database = Database(postgres_url)
    holder = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await database.upgrade()
        writer = make_writer(database, batch_size=100, flush_interval=0.01)
        await writer.start()
        await writer.flush()
        # another instance holds the chain's head row, as a writer does while it appends
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT size FROM privacy_audit_chains FOR UPDATE")
        for n in range(50):
            writer.emit(_login(n))
        assert await lock_waiters(holder, seconds=3.0) == 1  # the writer's take waits for the row lock
        task = writer._task
        assert task is not None
        task.cancel()  # a shutdown that did not wait for stop()
        with pytest.raises(asyncio.CancelledError):
            await task
        await transaction.rollback()
        assert writer.metrics.spooled.total == 50  # the batch, on disk
        await writer.stop()
        after = make_writer(database, audit_log)
        await after.start()  # the next start replays the spool
        await after.flush()
        await after.stop()
        async with database.connect() as conn:
            subjects = (await conn.execute(sa.select(audit_events.c.subject))).scalars()
            stored = sorted(s for s in subjects if s is not None and s.startswith("cust_"))
        assert stored == sorted(f"cust_{n}" for n in range(50))  # each once
        assert writer.metrics.dropped.total == after.metrics.dropped.total == 0
        await export(database, tmp_path / "out")
    finally:
        await holder.close()
        await database.dispose()
    assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 0
