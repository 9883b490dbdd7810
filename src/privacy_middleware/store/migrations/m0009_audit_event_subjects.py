"""Audit trail: the subjects index of events that list several subjects (one event per disclosure)."""

import sqlalchemy as sa

from ..audit import audit_event_subjects

VERSION = 9
DESCRIPTION = "audit event subjects"


def upgrade(conn: sa.Connection) -> None:
    audit_event_subjects.create(conn, checkfirst=True)
