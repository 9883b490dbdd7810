"""Audit trail: chain heads, events (Merkle leaves), checkpoints, side records, signing keys."""

import sqlalchemy as sa

from ..audit import AUDIT_TABLES

VERSION = 3
DESCRIPTION = "audit trail"


def upgrade(conn: sa.Connection) -> None:
    for table in AUDIT_TABLES:
        table.create(conn, checkfirst=True)
