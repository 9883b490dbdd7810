"""Audit trail: one signed seal per appended batch, and the time each event's batch was sealed."""

import sqlalchemy as sa

from ..audit import audit_batches

VERSION = 44
DESCRIPTION = "audit batch seals"


def upgrade(conn: sa.Connection) -> None:
    audit_batches.create(conn, checkfirst=True)
    columns = {column["name"] for column in sa.inspect(conn).get_columns("privacy_audit_events")}
    if "sealed_us" not in columns:
        # events written before batches were sealed: time 0 (older than any partition boundary)
        conn.execute(sa.text("ALTER TABLE privacy_audit_events ADD COLUMN sealed_us BIGINT NOT NULL DEFAULT 0"))
