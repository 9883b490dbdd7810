"""Audit trail (SQLite): the subject index kept in sorted runs instead of B-tree indexes.

The index of events by (subject, time) and of listed subjects by (subject, seq) put every new event
on a random page (`store/audit_subject_runs.py` says why that bounded the writer). An existing
trail becomes one run, sized to its level; the two indexes are dropped. PostgreSQL keeps its
indexes: it logs a changed page whole only once per checkpoint, not at every commit.
"""

import sqlalchemy as sa

from ..audit import audit_chains, audit_subject_entries, audit_subject_runs
from ..audit_subject_runs import level_of, run_statement

VERSION = 48
DESCRIPTION = "audit subject index in sorted runs (SQLite)"


def upgrade(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        return
    audit_subject_runs.create(conn, checkfirst=True)
    audit_subject_entries.create(conn, checkfirst=True)
    for chain, size in conn.execute(sa.select(audit_chains.c.chain, audit_chains.c.size)).all():
        if not size:
            continue
        conn.execute(sa.text(run_statement()), {"chain": chain, "run": 1, "start": 0, "end": size})
        conn.execute(
            audit_subject_runs.insert().values(chain=chain, run=1, level=level_of(size), first_seq=0, end_seq=size)
        )
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_privacy_audit_events_subject_time_us"))
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_privacy_audit_event_subjects_subject_seq"))
