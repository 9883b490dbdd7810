"""Login-attempt counters shared by several instances without Redis."""

import sqlalchemy as sa

from ..login_attempts import login_counter_members, login_counters

VERSION = 18
DESCRIPTION = "login attempt counters (reserve-then-decide without Redis)"


def upgrade(conn: sa.Connection) -> None:
    login_counters.create(conn, checkfirst=True)
    login_counter_members.create(conn, checkfirst=True)
