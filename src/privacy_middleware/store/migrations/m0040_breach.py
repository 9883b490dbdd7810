"""Breach response: canary records (keyed hashes) and access suspensions."""

import sqlalchemy as sa

from ..breach import BREACH_TABLES

VERSION = 40
DESCRIPTION = "breach response: canaries and suspensions"


def upgrade(conn: sa.Connection) -> None:
    for table in BREACH_TABLES:
        table.create(conn, checkfirst=True)
