"""Processes that share a spool directory (the workers of one server share their settings) each
spool in a slot of their own, and a slot whose process died is adopted and replayed by the next
writer to start: no batch is lost to another process renaming or removing the file it appends to."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from privacy_middleware.audit import AuditLog, login_attempt
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_events

pytestmark = pytest.mark.anyio
UNREACHABLE = "postgresql://audit@127.0.0.1:1/nowhere"


async def _logons(database: Database) -> list[str]:
    async with database.connect() as conn:
        rows = await conn.execute(
            sa.select(audit_events.c.subject)
            .where(audit_events.c.kind == "authentication.logon")
            .order_by(audit_events.c.seq)
        )
        return [r.subject for r in rows]


async def test_writers_sharing_a_directory_spool_apart_and_the_next_start_replays_both(
    database: Database, make_writer: object, tmp_path: Path
) -> None:
    unreachable = Database(UNREACHABLE)
    try:
        first, second = make_writer(unreachable), make_writer(unreachable)  # type: ignore[operator]
        await asyncio.gather(first.start(), second.start())
        for n in range(20):
            first.emit(login_attempt(success=True, subject=f"a_{n}", ip="198.51.100.1", username="a@shop.test"))
            second.emit(login_attempt(success=True, subject=f"b_{n}", ip="198.51.100.2", username="b@shop.test"))
        assert first.spool.directory != second.spool.directory
        await asyncio.gather(first.stop(), second.stop())
    finally:
        await unreachable.dispose()
    assert first.spool.pending() and second.spool.pending()
    later = make_writer(database)  # type: ignore[operator]
    await later.start()
    await later.stop()
    subjects = await _logons(database)
    assert sorted(subjects) == sorted([f"a_{n}" for n in range(20)] + [f"b_{n}" for n in range(20)])
    assert not list((tmp_path / "spool").rglob("audit-*.jsonl"))


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from privacy_middleware.audit import AuditLog, AuditWriter, login_attempt
    from privacy_middleware.store import Database

    async def main():
        key_path, side_key, spool = Path(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3]
        log = AuditLog(key_path, side_key, checkpoint_every=10, checkpoint_interval=3600)
        writer = AuditWriter(Database(sys.argv[4]), log, spool_dir=spool, flush_interval=0.02)
        await writer.start()
        for n in range(10):  # each returns once fsynced to the spool (the store is down)
            event = login_attempt(success=True, subject=f"child_{n}", ip="198.51.100.3", username="c@shop.test")
            await writer.emit_strict(event)
        print(writer.spool.directory.name, flush=True)
        await asyncio.sleep(3600)  # killed here, as a worker is

    asyncio.run(main())
    """
)


async def test_a_killed_workers_slot_is_left_alone_while_it_lives_and_replayed_after(
    database: Database, make_writer: object, tmp_path: Path, key_path: Path, side_key: bytes, audit_log: AuditLog
) -> None:
    audit_log.public_key_pem()  # the signing key exists on disk before the child loads it
    spool = tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(key_path), side_key.hex(), str(spool), UNREACHABLE],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        slot = (await asyncio.to_thread(child.stdout.readline)).decode().strip()
        assert slot.startswith("process-"), slot
        alive = make_writer(database)  # type: ignore[operator]
        await alive.start()
        await alive.stop()
        assert await _logons(database) == []  # a live process's slot is not taken over
        assert (spool / slot / "audit-spool.jsonl").stat().st_size > 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    after = make_writer(database)  # type: ignore[operator]
    await after.start()
    await after.stop()
    assert await _logons(database) == [f"child_{n}" for n in range(10)]
