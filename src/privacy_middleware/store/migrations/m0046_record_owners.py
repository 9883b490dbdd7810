"""Record owners: the subject a shop record was written for, by a blind index of its id."""

import sqlalchemy as sa

from ..record_owners import record_owners

VERSION = 46
DESCRIPTION = "record owners for records that do not name their subject"


def upgrade(conn: sa.Connection) -> None:
    record_owners.create(conn, checkfirst=True)
