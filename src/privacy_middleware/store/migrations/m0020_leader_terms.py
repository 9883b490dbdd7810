"""Leadership terms (fencing tokens) for the one instance that runs background work."""

import sqlalchemy as sa

from ..leader import leader_terms

VERSION = 20
DESCRIPTION = "leader terms (background work on one instance, fenced)"


def upgrade(conn: sa.Connection) -> None:
    leader_terms.create(conn, checkfirst=True)
