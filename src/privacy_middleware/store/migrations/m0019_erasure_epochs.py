"""The erasure epoch every instance follows, so no instance keeps an erased subject's key."""

import sqlalchemy as sa

from ..erasures import erasure_epochs, erasure_log

VERSION = 19
DESCRIPTION = "erasure epoch and log (cache eviction on every instance)"


def upgrade(conn: sa.Connection) -> None:
    erasure_epochs.create(conn, checkfirst=True)
    erasure_log.create(conn, checkfirst=True)
