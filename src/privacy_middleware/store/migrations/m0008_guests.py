"""Guests: order-access capabilities bound to guest subjects and one-time e-mail codes."""

import sqlalchemy as sa

from ..guests import GUEST_TABLES

VERSION = 8
DESCRIPTION = "guest capabilities and e-mail codes"


def upgrade(conn: sa.Connection) -> None:
    for table in GUEST_TABLES:
        table.create(conn, checkfirst=True)
