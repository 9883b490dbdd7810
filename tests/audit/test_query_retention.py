import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from privacy_middleware.audit import (
    AuditLog,
    access_log,
    data_access,
    export,
    lifecycle,
    login_attempt,
    purge,
    reveal_side_record,
    search,
    verify,
)
from privacy_middleware.audit.retention import index_ranges
from privacy_middleware.store import Database
from privacy_middleware.store import audit_subject_runs as subject_runs
from privacy_middleware.store.audit import audit_event_subjects, audit_events, audit_subject_entries

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def _seed(database: Database, log: AuditLog) -> None:
    events = [
        login_attempt(success=True, subject="cust_1", ip="203.0.113.5", device="d1", time=NOW - timedelta(days=200)),
        data_access(
            principal="svc_logistics",
            subject="cust_1",
            recipient="logistics",
            purpose="delivery",
            categories=["user.contact.address.delivery"],
            route="GET /orders/{id}",
            action="disclose",
            time=NOW - timedelta(days=60),
        ),
        login_attempt(success=False, subject="cust_1", ip="2001:db8:5::9", time=NOW - timedelta(days=60)),
        login_attempt(success=True, subject="cust_2", ip="198.51.100.3", time=NOW - timedelta(days=1)),
        data_access(
            principal="staff_9",
            subject="cust_1",
            purpose="support",
            categories=["user.contact.email"],
            action="reveal",
            time=NOW - timedelta(days=1),
        ),
    ]
    await log.append(database, [log.seal(e) for e in events])


async def test_search_filters_by_subject_kind_time_and_pages_by_index(database: Database, audit_log: AuditLog) -> None:
    await _seed(database, audit_log)
    assert [r.seq for r in await search(database, subject="cust_1")] == [0, 1, 2, 4]
    assert [r.kind for r in await search(database, kinds=["authentication.logon"])] == ["authentication.logon"] * 3
    assert [r.seq for r in await search(database, kinds=["api_activity.*"])] == [1, 4]
    assert await search(database, kinds=["api%"]) == []  # LIKE wildcards are not a prefix syntax
    assert await search(database, kinds=["api_activity_"]) == []
    recent = await search(database, since=NOW - timedelta(days=2), until=NOW)
    assert [r.seq for r in recent] == [3, 4]
    page = await search(database, subject="cust_1", after_seq=1, limit=1)
    assert [r.seq for r in page] == [2]
    assert page[0].time == NOW - timedelta(days=60)
    with pytest.raises(ValueError):
        await search(database, limit=0)


async def test_access_log_shows_the_subjects_logins_and_disclosures_without_raw_ips(
    database: Database, audit_log: AuditLog
) -> None:
    await _seed(database, audit_log)
    log = await access_log(database, "cust_1")
    assert [(e.outcome, e.network, e.device) for e in log.logins] == [
        ("success", "203.0.113.0/24", "d1"),
        ("failure", "2001:db8:5::/48", None),
    ]
    assert [(d.recipient, d.purpose, d.categories, d.principal, d.action) for d in log.disclosures] == [
        ("logistics", "delivery", ("user.contact.address.delivery",), "svc_logistics", "disclose"),
        (None, "support", ("user.contact.email",), "staff_9", "reveal"),
    ]
    assert "203.0.113.5" not in repr(log)
    assert (await access_log(database, "cust_3")).logins == ()


async def test_retention_shreds_side_records_then_bodies_and_the_log_still_verifies(
    database: Database, audit_log: AuditLog, tmp_path: Path
) -> None:
    await _seed(database, audit_log)
    refs = [r.document["refs"]["ref"] for r in await search(database, kinds=["authentication.logon"])]
    progress: list[tuple[str, int, int]] = []
    report = await purge(database, audit_log, now=NOW, progress=lambda *a: progress.append(a))
    assert (report.side_records_erased, report.events_purged, report.ranges) == (2, 1, [(0, 1)])
    assert progress == [("side_records", 2, 2), ("events", 1, 1)]
    # raw IPs older than 30 days are gone, the recent one stays
    assert [await reveal_side_record(database, audit_log.sealer, ref) for ref in refs] == [
        None,
        None,
        {"ip": "198.51.100.3"},
    ]
    # the 200-day-old body is gone, its index remains, and a marker explains it
    rows = await search(database)
    assert rows[0].document is None
    marker = rows[-1]
    assert marker.kind == "log.retention_purge" and marker.detail["ranges"] == [[0, 1]]
    assert [d.purpose for d in (await access_log(database, "cust_1")).disclosures] == ["delivery", "support"]
    # the purged event is about no one any more: not found by its subject, not in their sign-ins
    assert [r.seq for r in await search(database, subject="cust_1")] == [1, 2, 4]
    assert [e.outcome for e in (await access_log(database, "cust_1")).logins] == ["failure"]
    async with database.connect() as conn:
        e = audit_events
        row = (await conn.execute(sa.select(e.c.subject, e.c.principal, e.c.kind).where(e.c.seq == 0))).one()
    assert tuple(row) == (None, None, "authentication.logon")
    # nothing left to do on a second run
    again = await purge(database, audit_log, now=NOW)
    assert (again.side_records_erased, again.events_purged, again.markers) == (0, 0, [])
    await audit_log.checkpoint(database, force=True)
    await export(database, tmp_path / "out")
    result = verify(tmp_path / "out", audit_log.public_key_pem())
    assert (result.status, result.purged) == (0, 1)
    assert b"cust_1" not in (tmp_path / "out" / "events.jsonl").read_bytes().split(b"\n")[0]
    # a stub spelt otherwise than the exporter writes it is not found by the fast pass, but read by
    # the thorough one: same result
    events_file = tmp_path / "out" / "events.jsonl"
    original = events_file.read_bytes()
    assert original.count(b'{"purged":{"leaf_hash":"') == 1
    events_file.write_bytes(original.replace(b'{"purged":{"leaf_hash":', b'{"purged": {"leaf_hash": '))
    result = verify(tmp_path / "out", audit_log.public_key_pem())
    assert (result.status, result.purged) == (0, 1)
    events_file.write_bytes(original)
    # an edited marker no longer matches the signed tree
    lines = (tmp_path / "out" / "events.jsonl").read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"[[0,1]]", b"[[0,3]]")
    (tmp_path / "out" / "events.jsonl").write_bytes(b"\n".join(lines))
    assert verify(tmp_path / "out", audit_log.public_key_pem()).status == 1


async def test_lifecycle_leaves_outlive_retention(database: Database, audit_log: AuditLog) -> None:
    old = NOW - timedelta(days=400)
    await audit_log.append(database, [audit_log.seal(lifecycle("start", time=old))])
    report = await purge(database, audit_log, now=NOW)
    assert report.events_purged == 0
    assert (await search(database))[0].document is not None


async def test_purge_in_batches_writes_one_marker_per_batch(database: Database, audit_log: AuditLog) -> None:
    old = NOW - timedelta(days=365)
    await audit_log.append(
        database, [audit_log.seal(login_attempt(success=True, subject=f"c{n}", time=old)) for n in range(7)]
    )
    report = await purge(database, audit_log, now=NOW, batch_size=3)
    assert report.events_purged == 7 and len(report.markers) == 3
    markers = await search(database, kinds=["log.retention_purge"])
    assert [m.detail["ranges"] for m in markers] == [[[0, 3]], [[3, 6]], [[6, 7]]]
    assert all(orjson.dumps(m.detail).count(b"c1") == 0 for m in markers)


def test_index_ranges_are_half_open_runs() -> None:
    assert index_ranges([5, 1, 2, 3, 9, 10]) == [(1, 4), (5, 6), (9, 11)]
    assert index_ranges([]) == []


async def test_purged_events_leave_the_subject_index_also_its_sorted_runs(
    sqlite_url: str, audit_log: AuditLog, tmp_path: Path
) -> None:
    """SQLite: the purge takes the purged events' pairs out of the subject runs (built and merged
    before it) and out of the unindexed tail; the events it keeps are found as before."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        old, recent = NOW - timedelta(days=400), NOW - timedelta(days=2)
        events = []
        for n in range(44):  # own subjects and disclosures listing several, old and recent mixed
            when = old if n % 3 else recent
            if n % 4 == 0:
                events.append(
                    data_access(
                        principal="svc_logistics",
                        subjects=[f"cust_{n % 5}", f"cust_{(n + 1) % 5}"],
                        recipient="logistics",
                        purpose="delivery",
                        categories=["user.contact.address.delivery"],
                        action="disclose",
                        time=when,
                    )
                )
            else:
                events.append(login_attempt(success=True, subject=f"cust_{n % 5}", ip="203.0.113.5", time=when))
        await audit_log.append(database, [audit_log.seal(e) for e in events])
        before = {f"cust_{k}": [r.seq for r in await search(database, subject=f"cust_{k}")] for k in range(5)}
        db = sqlite3.connect(tmp_path / "privacy.db", isolation_level=None)
        try:
            for _ in range(7):  # five runs of 8 events, then a merge of four of them under way
                db.execute("BEGIN IMMEDIATE")
                subject_runs.index_step(db, audit_log.chain, run_events=8, fanout=4, chunk=5)
                db.execute("COMMIT")
            catalog = subject_runs.runs(db, audit_log.chain)
            assert subject_runs.watermark(catalog) == 40  # the last 4 events are the unindexed tail
            assert any(run.merging_into is not None for run in catalog)
        finally:
            db.close()
        assert {k: [r.seq for r in await search(database, subject=k)] for k in before} == before
        report = await purge(database, audit_log, now=NOW, batch_size=7)
        purged = {seq for first, end in report.ranges for seq in range(first, end)}
        assert purged == {n for n in range(44) if n % 3}
        for subject, seqs in before.items():
            assert [r.seq for r in await search(database, subject=subject)] == [s for s in seqs if s not in purged]
        async with database.connect() as conn:
            x, listed = audit_subject_entries, audit_event_subjects
            indexed = set((await conn.execute(sa.select(x.c.seq))).scalars())
            still_listed = set((await conn.execute(sa.select(listed.c.seq))).scalars())
        assert indexed and not indexed & purged
        assert still_listed and not still_listed & purged
    finally:
        await database.dispose()
