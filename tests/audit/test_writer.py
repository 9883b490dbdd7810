import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from privacy_middleware.audit import (
    AuditEvent,
    AuditLog,
    AuditWriter,
    SealedEvent,
    SpoolCorruptError,
    data_access,
    export,
    login_attempt,
    search,
    verify,
)
from privacy_middleware.audit.merkle import leaf_hash
from privacy_middleware.errors import PrivacyError
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_events
from support.audit_events import outbox_uids

pytestmark = pytest.mark.anyio

MakeWriter = Callable[..., AuditWriter]


def _login(n: int) -> AuditEvent:
    return login_attempt(success=True, subject=f"cust_{n}", ip=f"198.51.100.{n % 250}", username=f"u{n}@shop.test")


def _reveal(n: int) -> AuditEvent:
    return data_access(
        principal="staff_1",
        subject=f"cust_{n}",
        categories=["user.financial.card"],
        purpose="payment",
        route="GET /orders/{id}/payment",
    )


async def _kinds_and_subjects(database: Database) -> list[tuple[str, str | None]]:
    async with database.connect() as conn:
        rows = await conn.execute(sa.select(audit_events.c.kind, audit_events.c.subject).order_by(audit_events.c.seq))
        return [(r.kind, r.subject) for r in rows]


async def test_events_are_batched_in_emit_order_between_start_and_stop_leaves(
    database: Database, make_writer: MakeWriter, audit_log: AuditLog, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    writer = make_writer(database, batch_size=100, registry=registry)
    await writer.start()
    for n in range(1200):
        writer.emit(_login(n))
    await writer.stop()
    rows = await _kinds_and_subjects(database)
    assert rows[0][0] == "log.start" and rows[-1][0] == "log.stop"
    assert [s for _, s in rows[1:-1]] == [f"cust_{n}" for n in range(1200)]
    assert registry.get_sample_value("privacy_audit_events_written_total") == 1202
    assert registry.get_sample_value("privacy_audit_events_dropped_total") == 0
    await export(database, tmp_path / "out")
    report = verify(tmp_path / "out", audit_log.public_key_pem())
    assert (report.status, report.unverified_tail) == (0, 0)


async def test_a_full_queue_overflows_to_disk_in_emit_order_and_drops_nothing(
    database: Database, make_writer: MakeWriter, audit_log: AuditLog, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    writer = make_writer(database, queue_size=5, registry=registry)
    for n in range(8):
        writer.emit(_login(n))  # not started yet: the bounded queue fills up
    assert writer.pressure() > 1
    for n in range(8, 12):
        writer.emit(_reveal(n))  # payment reveals (a strict class) take the same way
    await writer.start()
    await writer.stop()
    assert registry.get_sample_value("privacy_audit_events_dropped_total") == 0
    assert registry.get_sample_value("privacy_audit_events_spooled_total") == 8  # 7 and the stop leaf
    rows = await _kinds_and_subjects(database)
    assert [s for _, s in rows[1:-1]] == [f"cust_{n}" for n in range(12)]
    assert rows[-1][0] == "log.stop"
    await export(database, tmp_path / "out")
    assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 0


async def test_sustained_overload_goes_through_the_overflow_and_loses_nothing(
    database: Database, make_writer: MakeWriter, audit_log: AuditLog, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    writer = make_writer(database, queue_size=40, batch_size=10, registry=registry)
    await writer.start()
    for n in range(600):
        writer.emit(_login(n))
        if n % 50 == 0:
            await asyncio.sleep(0)  # the writer runs now and then, slower than the traffic
    await writer.stop()
    assert registry.get_sample_value("privacy_audit_events_dropped_total") == 0
    assert (registry.get_sample_value("privacy_audit_events_spooled_total") or 0) > 0
    rows = await _kinds_and_subjects(database)
    assert [s for _, s in rows[1:-1]] == [f"cust_{n}" for n in range(600)]
    assert not list((tmp_path / "spool").rglob("audit-overflow*"))
    await export(database, tmp_path / "out")
    assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 0


async def test_what_is_queued_while_the_last_batch_is_in_flight_is_written_before_the_writer_stops(
    tmp_path: Path, make_writer: MakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() queues the stop leaf while the writer's last batch may still be in flight (here: held
    after its commit, on SQLite, whose writer has a batch in flight beside the loop); the writer
    must write it, not end with it queued."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}")
    await database.upgrade()
    in_flight = asyncio.Event()
    original = AuditWriter._index_subjects

    async def slow_after_commit(self: AuditWriter) -> None:
        in_flight.set()
        await asyncio.sleep(0.2)
        await original(self)

    monkeypatch.setattr(AuditWriter, "_index_subjects", slow_after_commit)
    writer = make_writer(database)
    await writer.start()
    writer.emit(_login(1))
    await asyncio.wait_for(in_flight.wait(), 5)
    await writer.stop()
    rows = await _kinds_and_subjects(database)
    await database.dispose()
    assert [kind for kind, _ in rows][-1] == "log.stop"
    assert ("authentication.logon", "cust_1") in rows


async def test_drops_happen_only_when_the_disk_refuses_and_raise_an_alarm(
    database: Database, make_writer: MakeWriter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_directory = tmp_path / "spool-file"
    not_a_directory.write_bytes(b"")
    registry = CollectorRegistry()
    writer = make_writer(database, queue_size=5, registry=registry, spool_dir=not_a_directory)
    for n in range(8):
        writer.emit(_login(n))
    await writer.start()
    await writer.stop()
    assert registry.get_sample_value("privacy_audit_events_dropped_total") == 3
    found = await search(database, kinds=["detection_finding.events_dropped"])
    assert [r.detail["related"] for r in found] == [{"count": 3}]
    stop = (await search(database, kinds=["log.stop"]))[0]
    assert stop.detail["dropped"] == 3
    assert any(r.levelname == "ERROR" and "ALARM" in r.getMessage() for r in caplog.records)


async def test_emit_never_raises_even_for_an_unsealable_event(database: Database, make_writer: MakeWriter) -> None:
    writer = make_writer(database)
    await writer.start()
    broken = AuditEvent(
        kind="authentication.logon",
        class_uid=3002,
        activity_id=1,
        time=_login(0).time,
        uid="x",
        detail={},
        personal={"password": "hunter2"},
    )
    writer.emit(broken)
    await writer.stop()
    found = await search(database, kinds=["detection_finding.events_dropped"])
    assert [r.detail["related"]["count"] for r in found] == [1]
    async with database.connect() as conn:
        leaves = b"".join(bytes(x) for x in (await conn.execute(sa.select(audit_events.c.leaf))).scalars())
    assert b"hunter2" not in leaves


async def test_emit_strict_returns_once_the_event_is_stored(database: Database, make_writer: MakeWriter) -> None:
    writer = make_writer(database, flush_interval=5.0)
    await writer.start()
    reveal = _reveal(7)
    await writer.emit_strict(reveal)
    if database.is_postgres:  # committed to the outbox; in the chain once the strict lane appends it
        async with database.connect() as conn:
            assert await outbox_uids(conn) in ([reveal.uid], [])
        await writer.flush()
    found = await search(database, kinds=["api_activity.data_reveal"])
    assert [r.subject for r in found] == ["cust_7"]


async def test_a_strict_event_goes_before_a_bulk_batch_waiting_for_the_store(
    sqlite_url: str, make_writer: MakeWriter
) -> None:
    """SQLite writes take turns: a strict caller waits for the batch being written, not for the
    bulk batches sealed meanwhile and queued for the store."""
    database = Database(sqlite_url)
    await database.upgrade()
    blocker = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    try:
        writer = make_writer(database, batch_size=50, flush_interval=5.0)
        await writer.start()
        await writer.flush()
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock for a moment
        first = asyncio.create_task(writer.emit_strict(_reveal(1)))
        await asyncio.sleep(0.2)  # the first reveal's batch is being written (SQLite's busy wait)
        for n in range(60):
            writer.emit(_login(n))
        await asyncio.sleep(0.2)  # a bulk batch is sealed and waits for the store
        second = asyncio.create_task(writer.emit_strict(_reveal(2)))
        await asyncio.sleep(0.05)
        blocker.rollback()
        await asyncio.gather(first, second)
        await writer.stop()
    finally:
        blocker.close()
        await database.dispose()
    subjects = [subject for kind, subject in await _kinds_and_subjects_of(sqlite_url) if kind != "log.stop"]
    assert subjects[1:4] == ["cust_1", "cust_2", "cust_0"]
    assert subjects[3:] == [f"cust_{n}" for n in range(60)]


async def _kinds_and_subjects_of(url: str) -> list[tuple[str, str | None]]:
    database = Database(url)
    try:
        return await _kinds_and_subjects(database)
    finally:
        await database.dispose()


async def test_emit_strict_refuses_when_the_writer_is_not_running(database: Database, make_writer: MakeWriter) -> None:
    writer = make_writer(database)
    with pytest.raises(PrivacyError) as info:
        await writer.emit_strict(_reveal(1))
    assert (info.value.code, info.value.status) == ("audit_unavailable", 503)


async def test_emit_strict_refuses_when_neither_store_nor_spool_can_take_it(
    sqlite_url: str, make_writer: MakeWriter, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    database = Database(sqlite_url)  # never migrated: every insert fails
    try:
        writer = make_writer(database, spool_dir=blocker / "spool")
        await writer.start()
        with pytest.raises(PrivacyError) as info:
            await writer.emit_strict(_reveal(1))
        assert info.value.status == 503
        assert "cust_1" not in info.value.message
    finally:
        await database.dispose()


async def test_store_outage_spools_then_replays_in_order(
    sqlite_url: str, make_writer: MakeWriter, tmp_path: Path, audit_log: AuditLog
) -> None:
    database = Database(sqlite_url)  # tables missing until upgrade(): a real failing store
    registry = CollectorRegistry()
    try:
        writer = make_writer(database, registry=registry, retry_interval=0.01)
        await writer.start()
        for n in range(30):
            writer.emit(_login(n))
        await writer.emit_strict(_reveal(30))  # durable in the spool, so it does not raise
        await writer.flush()
        spooled = registry.get_sample_value("privacy_audit_events_spooled_total")
        assert spooled is not None and spooled >= 32
        spool_bytes = b"".join(p.read_bytes() for p in (tmp_path / "spool").rglob("*.jsonl"))
        assert spool_bytes
        assert b"@shop.test" not in spool_bytes
        assert not any(f'"198.51.100.{n}"'.encode() in spool_bytes for n in range(30))
        assert b"198.51.100.0/24" in spool_bytes  # only the coarse hint
        await database.upgrade()
        for n in range(31, 40):
            writer.emit(_login(n))
        await writer.stop()
        rows = await _kinds_and_subjects(database)
        assert rows[0][0] == "log.start"
        subjects = [s for k, s in rows if k in {"authentication.logon", "api_activity.data_reveal"}]
        assert subjects == [f"cust_{n}" for n in range(40)]
        assert registry.get_sample_value("privacy_audit_events_replayed_total") == spooled
        assert not any((tmp_path / "spool").rglob("audit-spool*.jsonl"))
        await export(database, tmp_path / "out")
        assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 0
    finally:
        await database.dispose()


async def _spool_an_outage(writer: AuditWriter, database: Database, count: int) -> None:
    """Start `writer` on a store without its tables (a real failing store), spool logins, then migrate."""
    await writer.start()
    for n in range(count):
        writer.emit(_login(n))
    await writer.flush()
    assert writer.spool.pending() and writer.metrics.written.total == 0
    await database.upgrade()


async def test_a_strict_event_after_an_outage_is_written_after_the_spooled_events(
    database_url: str, make_writer: MakeWriter
) -> None:
    """The strict lane writes first after the outage: it replays the spool before its own batch."""
    database = Database(database_url)
    try:
        writer = make_writer(database, retry_interval=3600)  # no replay by the housekeeping
        await _spool_an_outage(writer, database, 3)
        await writer.emit_strict(_reveal(3))
        if database.is_postgres:
            await writer.flush()  # the strict lane appends the outbox's event (after the spool)
        assert not writer.spool.pending()
        rows = await _kinds_and_subjects(database)
        assert rows == [("log.start", None)] + [("authentication.logon", f"cust_{n}") for n in range(3)] + [
            ("api_activity.data_reveal", "cust_3")
        ]
        assert writer.metrics.replayed.total == 4 and writer.metrics.dropped.total == 0
        logins = await search(database, kinds=["authentication.logon"])
        assert [e.subject for e in logins] == [f"cust_{n}" for n in range(3)]
    finally:
        await writer.stop()
        await database.dispose()


async def test_flush_replays_an_outage_spool_with_nothing_else_to_write(
    database_url: str, make_writer: MakeWriter
) -> None:
    database = Database(database_url)
    try:
        writer = make_writer(database, retry_interval=3600)
        await _spool_an_outage(writer, database, 2)
        await writer.flush()
        assert not writer.spool.pending()
        assert [s for k, s in await _kinds_and_subjects(database) if k == "authentication.logon"] == [
            "cust_0",
            "cust_1",
        ]
    finally:
        await writer.stop()
        await database.dispose()


async def test_spool_left_by_a_crashed_instance_is_replayed_on_start(
    database: Database, make_writer: MakeWriter
) -> None:
    unreachable = Database("postgresql://audit@127.0.0.1:1/nowhere")
    try:
        down = make_writer(unreachable)
        await down.start()
        for n in range(5):
            down.emit(_login(n))
        await down.stop()  # everything, stop leaf included, went to the spool
    finally:
        await unreachable.dispose()
    up = make_writer(database)
    await up.start()
    up.emit(_login(5))
    await up.stop()
    kinds = [k for k, _ in await _kinds_and_subjects(database)]
    assert kinds[:7] == ["log.start"] + ["authentication.logon"] * 5 + ["log.stop"]
    subjects = [s for k, s in await _kinds_and_subjects(database) if k == "authentication.logon"]
    assert subjects == [f"cust_{n}" for n in range(6)]


async def test_corrupt_spool_names_file_and_line_and_replays_the_rest(
    database: Database, make_writer: MakeWriter, audit_log: AuditLog, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    good = [orjson.dumps(audit_log.seal(_login(n)).to_json()) for n in range(4)]
    lines = [good[0], good[1], b'{"doc": {"uid": "trunc', b"", good[2], b"not json at all", good[3]]
    (spool_dir / "audit-spool.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    writer = make_writer(database, spool_dir=spool_dir)
    with pytest.raises(SpoolCorruptError) as info:
        await writer.replay_spool()
    message = str(info.value)
    assert "audit-spool.jsonl" in message and "line 3" in message and "2 bad line(s)" in message
    assert info.value.kept_in is not None and info.value.kept_in.read_bytes().count(b"\n") == 2
    subjects = [s for k, s in await _kinds_and_subjects(database) if k == "authentication.logon"]
    assert subjects == ["cust_0", "cust_1", "cust_2", "cust_3"]


async def test_corrupt_spool_found_at_start_becomes_a_finding(
    database: Database, make_writer: MakeWriter, tmp_path: Path, audit_log: AuditLog
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    good = orjson.dumps(audit_log.seal(_login(1)).to_json())
    (spool_dir / "audit-spool.jsonl").write_bytes(b"garbage\n" + good + b"\n")
    writer = make_writer(database, spool_dir=spool_dir)
    await writer.start()
    await writer.stop()
    assert [e.first_bad_line for e in writer.spool_errors] == [1]
    found = await search(database, kinds=["detection_finding.spool_corrupt"])
    assert found[0].detail["related"] == {"file": "audit-spool.jsonl", "first_bad_line": 1, "count": 1}


async def test_idle_log_writes_heartbeat_leaves_with_checkpoints(
    database: Database, make_writer: MakeWriter, key_path: Path, side_key: bytes
) -> None:
    log = AuditLog(key_path, side_key, heartbeat_interval=0.05)
    writer = make_writer(database, log=log)
    await writer.start()
    await asyncio.sleep(0.3)
    await writer.stop()
    beats = await search(database, kinds=["log.heartbeat"])
    assert beats
    head = await log.head(database)
    assert head is not None and head.checkpoint_size == head.size


async def test_self_check_at_start_reports_a_log_edited_in_the_database(
    database: Database, make_writer: MakeWriter, audit_log: AuditLog
) -> None:
    await audit_log.append(database, [audit_log.seal(_login(n)) for n in range(12)])
    assert await audit_log.self_check(database) is None
    async with database.begin() as conn:
        leaf = (await conn.execute(sa.select(audit_events.c.leaf).where(audit_events.c.seq == 4))).scalar_one()
        edited = bytes(leaf).replace(b'"cust_4"', b'"cust_X"')
        await conn.execute(sa.update(audit_events).where(audit_events.c.seq == 4).values(leaf=edited))
    assert await audit_log.self_check(database) == "leaf 4 does not match its hash"
    writer = make_writer(database, self_check=True)
    await writer.start()
    await writer.stop()
    [finding] = await search(database, kinds=["detection_finding.tampering_detected"])
    assert finding.detail["related"] == {"problem": "leaf 4 does not match its hash"}
    assert finding.document is not None and finding.document["severity_id"] == 5


async def test_self_check_notices_a_recomputed_hash_and_a_deleted_row(database: Database, audit_log: AuditLog) -> None:
    await audit_log.append(database, [audit_log.seal(_login(n)) for n in range(12)])

    async with database.begin() as conn:
        leaf = (await conn.execute(sa.select(audit_events.c.leaf).where(audit_events.c.seq == 2))).scalar_one()
        edited = bytes(leaf).replace(b'"cust_2"', b'"cust_Y"')
        await conn.execute(
            sa.update(audit_events).where(audit_events.c.seq == 2).values(leaf=edited, leaf_hash=leaf_hash(edited))
        )
    assert await audit_log.self_check(database) == "leaves before index 12 do not match their checkpoint"
    async with database.begin() as conn:
        await conn.execute(sa.delete(audit_events).where(audit_events.c.seq == 7))
    assert await audit_log.self_check(database) == "index 7 is missing"


async def test_events_emitted_outside_start_and_stop_wait_on_disk_for_the_next_start(
    database: Database, make_writer: MakeWriter
) -> None:
    registry = CollectorRegistry()
    writer = make_writer(database, registry=registry)
    writer.emit(_login(1))
    writer.emit(_login(2))
    await writer.stop()
    writer.emit(_login(3))  # after stop: kept in the overflow spool
    assert registry.get_sample_value("privacy_audit_events_dropped_total") == 0
    assert await search(database) == []
    later = make_writer(database)
    await later.start()
    await later.stop()
    rows = await _kinds_and_subjects(database)
    assert [s for k, s in rows if k.startswith("authentication.")] == ["cust_1", "cust_2", "cust_3"]


async def test_one_event_the_store_refuses_cannot_block_the_spool(
    database: Database, make_writer: MakeWriter, audit_log: AuditLog, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    first, refused, last = (audit_log.seal(_login(n)) for n in (1, 2, 3))
    refused.doc["class_uid"] = 2**40  # parses, but does not fit the INTEGER column
    twin = SealedEvent.from_json(first.to_json())  # the same event spooled twice
    lines = [orjson.dumps(e.to_json()) for e in (first, refused, twin, last)]
    (spool_dir / "audit-spool.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    registry = CollectorRegistry()
    writer = make_writer(database, spool_dir=spool_dir, registry=registry)
    replayed = await writer.replay_spool()
    subjects = [s for k, s in await _kinds_and_subjects(database) if k.startswith("authentication.")]
    if database.is_postgres:
        assert (replayed, subjects) == (2, ["cust_1", "cust_3"])
        assert registry.get_sample_value("privacy_audit_events_dropped_total") == 1
        [kept] = spool_dir.rglob("audit-spool.rejected-*.jsonl")
        assert SealedEvent.from_json(orjson.loads(kept.read_bytes())).uid == refused.uid
    else:  # SQLite stores any integer: nothing to refuse, and the twin is still written once
        assert (replayed, subjects) == (3, ["cust_1", "cust_2", "cust_3"])
    assert not (spool_dir / "audit-spool.jsonl").exists()
