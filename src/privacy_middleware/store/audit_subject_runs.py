"""SQLite: the audit trail's subject index, kept in sorted runs that merge as a log-structured tree.

Why not a B-tree index on (subject, time): each new event lands on a random leaf page of it, and
every commit writes each page it changed into the WAL whole, so the store wrote about one 4 KiB
page per event for the index alone (with the runs, SQLite stores the bench's events 1.6x to 1.7x
as fast). Here:
- the newest events, above the watermark (the tail), are not indexed: a query scans them by
  sequence number (`store.audit.subject_seqs`);
- every `RUN_EVENTS` events, the tail's (subject, seq) pairs, the subjects an event lists
  included, are written sorted as one new run (level 0): appended at the end of the B-tree, so
  its pages are written once and full;
- `FANOUT` runs of one level are merged into one run of the next level, a chunk of subjects per
  step, so no step holds the write lock long, and a query probes a number of runs that grows with
  the logarithm of the trail's length.
An entry moves from a source run to the merge's target in one transaction (inserted there, deleted
here), and both stay in the catalog until the merge ends: a query sees each entry exactly once.

Every function runs inside the caller's transaction on a plain sqlite3 connection (the writer's
own thread, or aiosqlite's through `audit_sqlite.driver_thread`): any writer can take the next
step, and two writers serialise on SQLite's write lock.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .audit import audit_chains, audit_event_subjects, audit_events, audit_subject_entries, audit_subject_runs

RUN_EVENTS = 2048  # events per level-0 run: the tail a query scans stays below about twice this
STEPS_PER_RUN = 16  # steps the writer may take per RUN_EVENTS events written: merges keep pace
FANOUT = 8  # runs of one level merged into one of the next
CHUNK = 1024  # entries a merge step moves, about: a step holds the write lock for about 2 ms here

_RUNS = audit_subject_runs.name
_ENTRIES = audit_subject_entries.name
_CATALOG = (
    f"SELECT run, level, first_seq, end_seq, merging_into, moved_through FROM {_RUNS} WHERE chain = ? ORDER BY run"
)
_SIZE = f"SELECT size FROM {audit_chains.name} WHERE chain = ?"
_NEW_RUN = (
    f"INSERT INTO {_RUNS} (chain, run, level, first_seq, end_seq, merging_into, moved_through)"
    " VALUES (?, ?, ?, ?, ?, NULL, NULL)"
)


def run_statement() -> str:
    """The pairs of `chain`'s events `start` <= seq < `end`, sorted, into `run` (named parameters):
    the events' own subjects and the subjects a disclosure lists (an event has one or the other;
    UNION also drops a subject listed twice in one event)."""
    return (
        f"INSERT INTO {_ENTRIES} (chain, run, subject, seq)"
        f" SELECT chain, :run, subject, seq FROM {audit_events.name}"
        " WHERE chain = :chain AND seq >= :start AND seq < :end AND subject IS NOT NULL"
        f" UNION SELECT chain, :run, subject, seq FROM {audit_event_subjects.name}"
        " WHERE chain = :chain AND seq >= :start AND seq < :end"
        " ORDER BY 3, 4"
    )


_FLUSH = run_statement()


@dataclass(frozen=True, slots=True)
class Run:
    run: int
    level: int
    first_seq: int
    end_seq: int
    merging_into: int | None
    moved_through: str | None


@dataclass(frozen=True, slots=True)
class Step:
    """What one step did (`made`: "run", "merge" or None) and whether another is due already."""

    made: str | None
    more: bool


def level_of(events: int, *, run_events: int = RUN_EVENTS, fanout: int = FANOUT) -> int:
    """The level of a run that indexes `events` events: the level merges would have given it
    (a trail indexed at once, by the migration, then merges with runs of its own size)."""
    level, size = 0, run_events
    while size * fanout <= events:
        level, size = level + 1, size * fanout
    return level


def runs(db: sqlite3.Connection, chain: str) -> list[Run]:
    return [Run(*row) for row in db.execute(_CATALOG, (chain,))]


def watermark(catalog: list[Run]) -> int:
    """The first sequence number the runs do not index: the tail starts there."""
    return max((r.end_seq for r in catalog), default=0)


def index_step(
    db: sqlite3.Connection, chain: str, *, run_events: int = RUN_EVENTS, fanout: int = FANOUT, chunk: int = CHUNK
) -> Step:
    """One bounded piece of the index's work, in the caller's transaction: a new run of the tail
    when it holds `run_events` events (first: the tail a query scans stays short), else a chunk of
    the merge of the lowest level (a merge of small runs goes before one of large runs already
    under way, so the runs a query probes stay few while a large merge lasts)."""
    catalog = runs(db, chain)
    row = db.execute(_SIZE, (chain,)).fetchone()
    size = row[0] if row else 0
    start = watermark(catalog)
    if size - start >= run_events:
        end = start + run_events
        run = max((r.run for r in catalog), default=0) + 1
        db.execute(_FLUSH, {"run": run, "chain": chain, "start": start, "end": end})
        db.execute(_NEW_RUN, (chain, run, 0, start, end))
        catalog.append(Run(run, 0, start, end, None, None))
        return Step("run", size - end >= run_events or _next_merge(catalog, fanout) is not None)
    merge = _next_merge(catalog, fanout)
    if merge is None:
        return Step(None, False)
    target, sources = merge
    if target.run not in {r.run for r in catalog}:
        _start_merge(db, chain, target, sources)
    finished = _move_chunk(db, chain, target, sources, chunk)
    if finished:
        catalog = runs(db, chain)
    return Step("merge", not finished or _next_merge(catalog, fanout) is not None)


def _next_merge(catalog: list[Run], fanout: int) -> tuple[Run, list[Run]] | None:
    """The merge to work on: the one of the lowest level, under way or (a new target, not in the
    catalog yet) to start with the oldest `fanout` runs of a level that has that many."""
    under_way: dict[int, list[Run]] = {}
    for r in catalog:
        if r.merging_into is not None:
            under_way.setdefault(r.merging_into, []).append(r)
    targets = {r.run: r for r in catalog if r.run in under_way}
    lowest = min(targets.values(), key=lambda r: r.level, default=None)
    by_level: dict[int, list[Run]] = {}
    for r in catalog:
        if r.merging_into is None and r.run not in under_way:
            by_level.setdefault(r.level, []).append(r)
    for level in sorted(by_level):
        if lowest is not None and level + 1 >= lowest.level:
            break
        full = by_level[level][:fanout]
        if len(full) == fanout:
            target = Run(
                max(r.run for r in catalog) + 1,
                level + 1,
                min(r.first_seq for r in full),
                max(r.end_seq for r in full),
                None,
                None,
            )
            return target, full
    if lowest is None:
        return None
    return lowest, under_way[lowest.run]


def _start_merge(db: sqlite3.Connection, chain: str, target: Run, sources: list[Run]) -> None:
    """A new (empty) target run in the catalog, its sources marked as going to it."""
    db.execute(_NEW_RUN, (chain, target.run, target.level, target.first_seq, target.end_seq))
    names = tuple(r.run for r in sources)
    marks = ", ".join("?" for _ in names)
    db.execute(f"UPDATE {_RUNS} SET merging_into = ? WHERE chain = ? AND run IN ({marks})", (target.run, chain, *names))


def _move_chunk(db: sqlite3.Connection, chain: str, target: Run, sources: list[Run], chunk: int) -> bool:
    """Move the sources' entries of the next range of subjects into the target; True once the
    sources are empty (they are then dropped from the catalog and the merge is over).

    The range ends at the first subject that lies `chunk / len(sources)` entries past the last
    one moved in some source; all entries of a subject move together."""
    after = target.moved_through
    names = tuple(r.run for r in sources)
    marks = ", ".join("?" for _ in names)
    past = "" if after is None else " AND subject > ?"
    lower: tuple[object, ...] = () if after is None else (after,)
    per_source = max(1, chunk // len(sources))
    ends = []
    for name in names:
        row = db.execute(
            f"SELECT subject FROM {_ENTRIES} WHERE chain = ? AND run = ?{past} ORDER BY subject, seq LIMIT 1 OFFSET ?",
            (chain, name, *lower, per_source),
        ).fetchone()
        if row is not None:
            ends.append(row[0])
    upto = min(ends) if ends else None
    where = f"chain = ? AND run IN ({marks}){past}" + ("" if upto is None else " AND subject <= ?")
    params = (chain, *names, *lower, *(() if upto is None else (upto,)))
    db.execute(
        f"INSERT INTO {_ENTRIES} (chain, run, subject, seq)"
        f" SELECT chain, ?, subject, seq FROM {_ENTRIES} WHERE {where} ORDER BY subject, seq",
        (target.run, *params),
    )
    db.execute(f"DELETE FROM {_ENTRIES} WHERE {where}", params)
    if upto is not None:
        db.execute(f"UPDATE {_RUNS} SET moved_through = ? WHERE chain = ? AND run = ?", (upto, chain, target.run))
        return False
    db.execute(f"DELETE FROM {_RUNS} WHERE chain = ? AND run IN ({marks})", (chain, *names))
    db.execute(f"UPDATE {_RUNS} SET moved_through = NULL WHERE chain = ? AND run = ?", (chain, target.run))
    return True


def steps_due(unindexed: int, more: bool) -> int:
    """How many steps a writer takes after a batch, `unindexed` events since its last steps (the
    last of which said whether `more` was due): enough for the merges to keep pace."""
    if not more and unindexed < RUN_EVENTS:
        return 0
    return max(1, unindexed * STEPS_PER_RUN // RUN_EVENTS)


def step_committed(db: sqlite3.Connection, chain: str) -> Step:
    """`index_step` in a transaction of its own (the write lock taken first), committed."""
    db.execute("BEGIN IMMEDIATE")
    try:
        step = index_step(db, chain)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return step
