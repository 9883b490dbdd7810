"""The SQLite audit trail's subject index in sorted runs: whatever the writer appended and however
far the runs have been built and merged, a subject's events are found exactly, each once."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from privacy_middleware.audit import AuditLog, AuditWriter, data_access, login_attempt
from privacy_middleware.audit.query import access_log, search
from privacy_middleware.store import Database
from privacy_middleware.store import audit_subject_runs as subject_runs
from privacy_middleware.store.audit import (
    audit_chains,
    audit_event_subjects,
    audit_events,
    audit_subject_entries,
    audit_subject_runs,
    subject_seqs,
)
from privacy_middleware.store.rights import forget_audit_side_records
from support.migrations import migrate_before

pytestmark = pytest.mark.anyio

SUBJECTS = [f"cust_{n}" for n in range(12)]
TABLES = [audit_chains, audit_events, audit_event_subjects, audit_subject_runs, audit_subject_entries]


@functools.cache
def _query(subject: str) -> str:
    """The store's query of a subject's events, as SQLite runs it."""
    sql = subject_seqs("default", subject).compile(dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True})
    return str(sql)


class Trail:
    """A bare chain on a real SQLite file: events appended as the writer stores them (own subject,
    or listed subjects), the index stepped by hand, the query compiled as the store runs it."""

    def __init__(self, path: Path, subjects: list[str] = SUBJECTS) -> None:
        engine = sa.create_engine(f"sqlite:///{path}")
        for table in TABLES:
            table.create(engine, checkfirst=True)
        engine.dispose()
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("INSERT INTO privacy_audit_chains VALUES ('default', 0, '[]', 0, 0, 0)")
        self.size = 0
        self.about: dict[str, list[int]] = {s: [] for s in subjects}

    def append(self, subjects: list[list[str]]) -> None:
        """One event per entry: one subject is the event's own, several are a disclosure's list."""
        self.db.execute("BEGIN IMMEDIATE")
        for listed in subjects:
            seq, own = self.size, listed[0] if len(listed) == 1 else None
            self.db.execute(
                "INSERT INTO privacy_audit_events (chain, seq, uid, time_us, kind, class_uid, subject, leaf_hash,"
                " sealed_us) VALUES ('default', ?, ?, ?, 'k', 1, ?, x'00', 0)",
                (seq, f"uid-{seq}", seq, own),
            )
            if own is None:
                self.db.executemany(
                    "INSERT INTO privacy_audit_event_subjects VALUES ('default', ?, ?)", [(seq, s) for s in set(listed)]
                )
            for s in set(listed):
                self.about[s].append(seq)
            self.size += 1
        self.db.execute("UPDATE privacy_audit_chains SET size = ?", (self.size,))
        self.db.commit()

    def step(self, **sizes: int) -> subject_runs.Step:
        self.db.execute("BEGIN IMMEDIATE")
        step = subject_runs.index_step(self.db, "default", **sizes)
        self.db.commit()
        return step

    def found(self, subject: str) -> list[int]:
        return sorted(row[0] for row in self.db.execute(_query(subject)))

    def check(self) -> None:
        for subject in self.about:
            assert self.found(subject) == self.about[subject], subject  # each once, none missing
        catalog = subject_runs.runs(self.db, "default")
        mark = subject_runs.watermark(catalog)
        pairs = sum(1 for seqs in self.about.values() for seq in seqs if seq < mark)
        assert self.db.execute("SELECT count(*) FROM privacy_audit_subject_entries").fetchone()[0] == pairs
        orphans = (
            "SELECT count(*) FROM privacy_audit_subject_entries"
            " WHERE run NOT IN (SELECT run FROM privacy_audit_subject_runs)"
        )
        assert self.db.execute(orphans).fetchone()[0] == 0


# an operation: append that many events (each one subject, or a list of up to four), or 0: one step
operations = st.lists(
    st.one_of(
        st.just(0),
        st.lists(st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=4), min_size=1, max_size=9),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, sizes=st.sampled_from([(4, 2, 3), (3, 3, 1), (5, 2, 50)]))
def test_every_subject_is_found_exactly_once_through_runs_merges_and_tail(
    tmp_path_factory: pytest.TempPathFactory, ops: list[object], sizes: tuple[int, int, int]
) -> None:
    trail = Trail(tmp_path_factory.mktemp("runs") / "trail.db")
    run_events, fanout, chunk = sizes
    for op in ops:
        if op == 0:
            trail.step(run_events=run_events, fanout=fanout, chunk=chunk)
        else:
            assert isinstance(op, list)
            trail.append(op)
        trail.check()
    while trail.step(run_events=run_events, fanout=fanout, chunk=chunk).more:
        trail.check()
    trail.check()
    catalog = subject_runs.runs(trail.db, "default")
    assert trail.size - subject_runs.watermark(catalog) < run_events  # the tail was indexed
    assert not any(r.merging_into is not None for r in catalog)  # no merge left half-done
    assert sum(1 for r in catalog if r.level == 0) < fanout


def test_merges_keep_the_runs_few_and_each_step_small(tmp_path: Path) -> None:
    subjects = [f"cust_{n}" for n in range(2000)]
    trail = Trail(tmp_path / "trail.db", subjects)
    rng = random.Random(7)
    moved_most = 0
    for _ in range(300):
        trail.append([[rng.choice(subjects)] for _ in range(20)])
        for _ in range(8):
            before = trail.db.total_changes
            step = trail.step(run_events=16, fanout=4, chunk=40)
            if step.made == "merge":
                moved_most = max(moved_most, trail.db.total_changes - before)
            if not step.more:
                break
    trail.check()
    catalog = subject_runs.runs(trail.db, "default")
    # 6,000 events in runs of 16: 375 level-0 runs were made, merged four at a time
    assert max(r.level for r in catalog) >= 3
    assert len(catalog) <= 4 * 4
    # a merge step moves about `chunk` entries (with the rest of its last subject in each source: a
    # subject has about three events here) and writes each twice (inserted, deleted), plus the catalog
    assert moved_most <= 2 * (40 + 4 * 8) + 8


def test_a_trail_indexed_at_once_gets_the_level_merges_would_have_given_it() -> None:
    level_of = subject_runs.level_of
    assert [level_of(n, run_events=4, fanout=2) for n in (0, 4, 7, 8, 15, 16, 32)] == [0, 0, 0, 1, 1, 2, 3]
    assert level_of(subject_runs.RUN_EVENTS * subject_runs.FANOUT**3) == 3
    assert level_of(subject_runs.RUN_EVENTS * subject_runs.FANOUT**3 - 1) == 2


# the writer's own connections to the file, or (a URL with options) the pool's
@pytest.mark.parametrize("options", ["", "?timeout=30"])
async def test_the_writer_builds_the_runs_and_queries_find_every_event(tmp_path: Path, options: str) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}{options}")
    try:
        await database.upgrade()
        log = AuditLog(tmp_path / "signing.pem", os.urandom(32))
        writer = AuditWriter(database, log, spool_dir=tmp_path / "spool", registry=CollectorRegistry())
        await writer.start()
        rng = random.Random(11)
        expected: dict[str, int] = dict.fromkeys(SUBJECTS, 0)
        for n in range(3 * subject_runs.RUN_EVENTS + 100):
            if n % 5:
                subject = rng.choice(SUBJECTS)
                expected[subject] += 1
                writer.emit(
                    login_attempt(success=True, subject=subject, ip="192.0.2.1", username=f"{subject}@shop.test")
                )
            else:
                listed = rng.sample(SUBJECTS, 3)
                for s in listed:
                    expected[s] += 1
                writer.emit(
                    data_access(
                        principal="svc_logistics", subjects=listed, categories=["user.contact"], purpose="delivery"
                    )
                )
            if n % 100 == 0:
                await asyncio.sleep(0)  # the writer runs now and then, as beside requests
        await writer.flush()  # written while running: the writer builds runs (a stopping one leaves them)
        await writer.stop()
        async with database.connect() as conn:
            runs = (await conn.execute(sa.select(audit_subject_runs))).all()
        assert runs and max(r.end_seq for r in runs) >= 2 * subject_runs.RUN_EVENTS  # most not in the tail
        for subject, count in expected.items():
            found = await search(database, subject=subject, limit=1000)
            assert len(found) == count
            assert all(r.subject == subject or subject in r.detail["subjects"] for r in found)
        logs = await access_log(database, "cust_3", limit=1000)
        assert len(logs.logins) + len(logs.disclosures) == expected["cust_3"]
        # erasure finds the subject's own events through the runs: their sealed side records go
        assert await forget_audit_side_records(database, "cust_3") > 0
        assert await forget_audit_side_records(database, "cust_3") == 0
    finally:
        await database.dispose()


async def test_an_existing_trail_becomes_one_run_and_loses_the_random_indexes(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}")
    try:
        await migrate_before(database, 48)  # a store from before the runs: migrations up to 47
        log = AuditLog(tmp_path / "signing.pem", os.urandom(32))
        events = [login_attempt(success=True, subject=f"cust_{n % 4}", ip="192.0.2.1") for n in range(10)]
        events.append(data_access(principal="svc", subjects=["cust_1", "cust_9"], categories=["user"], purpose="x"))
        await log.append(database, [log.seal(e) for e in events])
        assert await database.upgrade() == [48]
        async with database.connect() as conn:
            runs = (await conn.execute(sa.select(audit_subject_runs))).all()
            indexes = set(
                (await conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'index'"))).scalars()
            )
        assert [(r.run, r.first_seq, r.end_seq) for r in runs] == [(1, 0, 11)]
        assert "ix_privacy_audit_events_subject_time_us" not in indexes
        assert "ix_privacy_audit_event_subjects_subject_seq" not in indexes
        assert [r.seq for r in await search(database, subject="cust_1")] == [1, 5, 9, 10]
        assert [r.seq for r in await search(database, subject="cust_9")] == [10]
        await log.append(database, [log.seal(login_attempt(success=False, subject="cust_9", ip="192.0.2.1"))])
        assert [r.seq for r in await search(database, subject="cust_9")] == [10, 11]  # 11: in the tail
    finally:
        await database.dispose()
