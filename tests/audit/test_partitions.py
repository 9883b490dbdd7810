"""PostgreSQL audit events partitioned by sealing time: created ahead by the writers, an existing
store migrated into a legacy partition, retention dropping whole partitions with the rest verifying."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from privacy_middleware.audit import AuditLog, export, login_attempt, purge, search, verify
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_event_subjects, audit_events, audit_side_records
from privacy_middleware.store.audit_partitions import drop_partition, is_partitioned, partitions, period_start
from support.migrations import migrate_before

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _logins(first: int, count: int, when: datetime | None = None) -> list[Any]:
    return [
        login_attempt(success=True, subject=f"cust_{n}", ip=f"192.0.2.{n % 200}", username=f"u{n}@shop.test", time=when)
        for n in range(first, first + count)
    ]


async def _where(database: Database) -> dict[int, str]:
    async with database.connect() as conn:
        rows = await conn.execute(sa.text("SELECT seq, tableoid::regclass::text FROM privacy_audit_events"))
        return dict(rows.all())


async def test_writers_create_partitions_ahead_and_events_land_in_theirs(
    postgres_url: str, key_path: Path, side_key: bytes
) -> None:
    database = Database(postgres_url)
    week, month = 7 * 86_400 * 1_000_000, 28 * 86_400 * 1_000_000
    try:
        await database.upgrade()
        async with database.connect() as conn:
            assert await is_partitioned(conn)
            first = await partitions(conn)  # the migration's: this week and the next ones
        now = time.time_ns() // 1000
        assert first[0].low == period_start(now, week) and first[-1].high == period_start(now, week) + 3 * week
        log = AuditLog(key_path, side_key, partition_seconds=28 * 86_400)  # a period longer than what is left
        await log.append(database, [log.seal(e) for e in _logins(0, 5)])
        async with database.connect() as conn:
            found = await partitions(conn)
        added = found[len(first) :]
        assert added and all(p.high - p.low == month for p in added)  # the writer's own period, ahead
        assert found[-1].high >= period_start(now, month) + 3 * month
        this = next(p.name for p in found if p.low is not None and p.low <= now < p.high)
        assert set((await _where(database)).values()) == {this}
    finally:
        await database.dispose()


async def test_an_existing_store_becomes_a_legacy_partition_and_still_verifies(
    postgres_url: str, key_path: Path, side_key: bytes, tmp_path: Path
) -> None:
    database = Database(postgres_url)
    try:
        await migrate_before(database, 45)  # a store from before partitioning: migrations up to 44
        log = AuditLog(key_path, side_key, partition_seconds=86_400)
        await log.append(database, [log.seal(e) for e in _logins(0, 6)])
        async with database.connect() as conn:
            assert not await is_partitioned(conn)
        assert (await database.upgrade())[:1] == [45]  # then any later migration
        log = AuditLog(key_path, side_key, partition_seconds=86_400)
        await log.append(database, [log.seal(e) for e in _logins(6, 6)])
        where = await _where(database)
        assert {where[n] for n in range(6)} == {"privacy_audit_events_legacy"}
        assert sorted(where) == list(range(12))
        await export(database, tmp_path / "out")
        report = verify(tmp_path / "out", log.public_key_pem())
        assert (report.status, report.verified_size, report.batches_verified) == (0, 12, 2), report.reason
    finally:
        await database.dispose()


async def test_retention_drops_whole_partitions_and_the_rest_verifies_from_its_anchor(
    postgres_url: str, key_path: Path, side_key: bytes, tmp_path: Path
) -> None:
    database = Database(postgres_url)
    try:
        await database.upgrade()
        async with database.begin() as conn:  # a store partitioned by the second: the migration's weeks go
            for partition in await partitions(conn):
                await drop_partition(conn, partition)
        log = AuditLog(key_path, side_key, partition_seconds=1)
        old = datetime.now(UTC) - timedelta(days=400)
        await log.append(database, [log.seal(e) for e in _logins(0, 8, old)])
        await log.append(database, [log.seal(e) for e in _logins(8, 4, old)])
        now = time.time()
        await asyncio.sleep(int(now) + 1.05 - now)  # the next second: the next partition
        await log.append(database, [log.seal(e) for e in _logins(12, 5)])
        where = await _where(database)
        kept_partition = where[12]
        async with database.connect() as conn:
            kept = next(p for p in await partitions(conn) if p.name == kept_partition)
        # retention as of the start of the kept partition: everything sealed before it has expired
        report = await purge(
            database, log, side_record_days=0, event_days=0, now=datetime.fromtimestamp(kept.low / 1e6, UTC)
        )
        assert report.events_dropped == 12 and where[0] in report.partitions_dropped
        assert kept_partition not in report.partitions_dropped
        async with database.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.min(audit_events.c.seq)))).scalar_one() == 12
            assert not await conn.scalar(sa.select(sa.func.count()).select_from(audit_event_subjects))
            sides = await conn.scalar(sa.select(sa.func.count()).select_from(audit_side_records))
        assert sides == 5  # the dropped events' raw values went with them
        marker = (await search(database, kinds=["log.retention_drop"]))[0]
        assert marker.detail["anchor"] == 12 and marker.detail["dropped"] == [0, 12]
        await log.checkpoint(database, force=True)
        out = tmp_path / "out"
        await export(database, out)
        assert orjson.loads((out / "anchor.json").read_bytes())["size"] == 12
        result = verify(out, log.public_key_pem())
        assert (result.status, result.dropped, result.verified_size, result.events) == (0, 12, 18, 6), result.reason
        # the anchor is held to the signed heads: a forged frontier, or none at all, is caught
        anchor = orjson.loads((out / "anchor.json").read_bytes())
        anchor["frontier"][0] = "00" * 32
        (out / "anchor.json").write_bytes(orjson.dumps(anchor))
        assert verify(out, log.public_key_pem()).status == 1
        (out / "anchor.json").unlink()
        assert verify(out, log.public_key_pem()).status == 2
    finally:
        await database.dispose()


async def test_sqlite_keeps_one_table_and_retention_rewrites_rows(
    sqlite_url: str, key_path: Path, side_key: bytes
) -> None:
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        log = AuditLog(key_path, side_key, partition_seconds=1)
        old = datetime.now(UTC) - timedelta(days=400)
        await log.append(database, [log.seal(e) for e in _logins(0, 3, old)])
        async with database.connect() as conn:
            assert not await is_partitioned(conn)
        report = await purge(database, log)
        assert (report.partitions_dropped, report.events_purged) == ([], 3)
    finally:
        await database.dispose()


async def test_a_store_partitioned_after_the_writer_looked_gets_its_partitions(
    postgres_url: str, key_path: Path, side_key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that found no partitioned table (not migrated yet) looks again later: once another
    instance migrated the store, the writer creates the partitions its later events need."""
    database = Database(postgres_url)
    week = 7 * 86_400 * 1_000_000
    try:
        log = AuditLog(key_path, side_key)
        await log.prepare(database)  # no tables yet: nothing to create
        await database.upgrade()  # another instance migrates: three weeks of partitions
        later = time.time_ns() // 1000 + 4 * week  # past the migration's partitions
        monkeypatch.setattr("privacy_middleware.audit.log._now_us", lambda: later)
        await log.append(database, [log.seal(e) for e in _logins(0, 2)])
        async with database.connect() as conn:
            found = await partitions(conn)
        assert found[-1].high > later
        assert len(await search(database, kinds=["authentication.logon"])) == 2
    finally:
        await database.dispose()
