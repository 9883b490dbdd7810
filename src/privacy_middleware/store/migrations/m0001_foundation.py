"""Foundation: the policy version history."""

import sqlalchemy as sa

from ..tables import policy_versions

VERSION = 1
DESCRIPTION = "policy version history"


def upgrade(conn: sa.Connection) -> None:
    policy_versions.create(conn, checkfirst=True)
