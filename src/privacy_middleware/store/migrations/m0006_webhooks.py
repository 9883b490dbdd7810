"""Integrations: accepted webhook deliveries, for durable de-duplication."""

import sqlalchemy as sa

from ..webhooks import webhook_deliveries

VERSION = 6
DESCRIPTION = "webhook deliveries (de-duplication)"


def upgrade(conn: sa.Connection) -> None:
    webhook_deliveries.create(conn, checkfirst=True)
