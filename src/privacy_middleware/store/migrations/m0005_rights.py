"""Subject rights: request records with their step history, subject flags, kept exports."""

import sqlalchemy as sa

from ..rights import RIGHTS_TABLES

VERSION = 5
DESCRIPTION = "subject-rights requests, subject flags and kept exports"


def upgrade(conn: sa.Connection) -> None:
    for table in RIGHTS_TABLES:
        table.create(conn, checkfirst=True)
