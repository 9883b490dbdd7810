"""Audit trail: the strict outbox, where a strict event is committed before the chain sequencer appends it."""

import sqlalchemy as sa

from ..audit_outbox import audit_strict_outbox

VERSION = 47
DESCRIPTION = "audit strict outbox"


def upgrade(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":  # SQLite commits a strict event straight into the chain
        audit_strict_outbox.create(conn, checkfirst=True)
