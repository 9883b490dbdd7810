"""Audit trail: PostgreSQL events range-partitioned by sealing time; retention anchors.

An existing events table with rows becomes the partition `privacy_audit_events_legacy`, covering
everything sealed before the migration. The migration creates the first partitions (weekly, up to
three weeks ahead); the writers create the following ones (one per `PRIVACY_AUDIT__PARTITION_DAYS`)
ahead of time. SQLite keeps its single table.
"""

import time

import sqlalchemy as sa

from ..audit_partitions import LEGACY, PARENT, audit_anchors, partition_name, period_start

VERSION = 45
_WEEK_US = 7 * 86_400 * 1_000_000
DESCRIPTION = "audit events partitioned by time (PostgreSQL)"

_INDEXES = {
    "ix_privacy_audit_events_uid": "(uid)",
    "ix_privacy_audit_events_subject_time_us": "(subject, time_us)",
    "ix_privacy_audit_events_kind_time_us": "(kind, time_us)",
    "ix_privacy_audit_events_time_us": "(time_us)",
}


def upgrade(conn: sa.Connection) -> None:
    audit_anchors.create(conn, checkfirst=True)
    if conn.dialect.name != "postgresql":
        return
    kind = conn.scalar(sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": PARENT})
    if kind == "p":
        return
    conn.execute(sa.text(f"ALTER TABLE {PARENT} RENAME TO {LEGACY}"))
    legacy_indexes = conn.execute(
        sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t AND schemaname = current_schema()"),
        {"t": LEGACY},
    ).scalars()
    for index in list(legacy_indexes):
        if index.startswith(("ix_privacy_audit_events", "uq_privacy_audit_events", "pk_privacy_audit_events")):
            renamed = index.replace("privacy_audit_events", "privacy_audit_legacy", 1)
            conn.execute(sa.text(f'ALTER INDEX "{index}" RENAME TO "{renamed}"'))
    conn.execute(
        sa.text(
            f"CREATE TABLE {PARENT} ("
            " chain VARCHAR(64) NOT NULL, seq BIGINT NOT NULL, uid VARCHAR(36) NOT NULL,"
            " time_us BIGINT NOT NULL, kind VARCHAR(80) NOT NULL, class_uid INTEGER NOT NULL,"
            " subject VARCHAR(200), principal VARCHAR(200), leaf BYTEA, leaf_hash BYTEA NOT NULL,"
            " purged_us BIGINT, sealed_us BIGINT NOT NULL DEFAULT 0,"
            " CONSTRAINT pk_privacy_audit_events PRIMARY KEY (chain, seq, sealed_us)"
            ") PARTITION BY RANGE (sealed_us)"
        )
    )
    for name, columns in _INDEXES.items():
        conn.execute(sa.text(f"CREATE INDEX {name} ON {PARENT} {columns}"))
    now = time.time_ns() // 1000
    if conn.scalar(sa.text(f"SELECT count(*) FROM (SELECT 1 FROM {LEGACY} LIMIT 1) AS any_row")) == 0:
        conn.execute(sa.text(f"DROP TABLE {LEGACY}"))  # a new store: no legacy partition
        _weeks_ahead(conn, period_start(now, _WEEK_US), now)
        return
    # the parent's key (chain, seq, sealed_us) replaces the old one; the old rows stay where they are
    for (name,) in conn.execute(
        sa.text("SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'p'"), {"t": LEGACY}
    ).all():
        conn.execute(sa.text(f'ALTER TABLE {LEGACY} DROP CONSTRAINT "{name}"'))
    newest = conn.scalar(sa.text(f"SELECT max(sealed_us) FROM {LEGACY}")) or 0
    boundary = max(now, newest + 1)
    conn.execute(sa.text(f"ALTER TABLE {PARENT} ATTACH PARTITION {LEGACY} FOR VALUES FROM (MINVALUE) TO ({boundary})"))
    _weeks_ahead(conn, boundary, now)


def _weeks_ahead(conn: sa.Connection, low: int, now: int) -> None:
    """The first partitions (the default week, three of them), so the first append creates none:
    writers add the next ones in their own period (`PRIVACY_AUDIT__PARTITION_DAYS`) from the last bound."""
    until = period_start(now, _WEEK_US) + 3 * _WEEK_US
    while low < until:
        high = period_start(low, _WEEK_US) + _WEEK_US
        conn.execute(
            sa.text(f"CREATE TABLE {partition_name(low)} PARTITION OF {PARENT} FOR VALUES FROM ({low}) TO ({high})")
        )
        low = high
