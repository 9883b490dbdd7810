"""Key store: wrapped tenant and subject keys, erasure tombstones, token vault."""

import sqlalchemy as sa

from ..keys import KEY_TABLES

VERSION = 2
DESCRIPTION = "key store: tenant keys, subject keys, tombstones, token vault"


def upgrade(conn: sa.Connection) -> None:
    for table in KEY_TABLES:
        table.create(conn, checkfirst=True)
