"""Consent: append-only consent history and visitor-to-account links."""

import sqlalchemy as sa

from ..consent import consent_links, consent_records

VERSION = 4
DESCRIPTION = "consent records and visitor links"


def upgrade(conn: sa.Connection) -> None:
    consent_records.create(conn, checkfirst=True)
    consent_links.create(conn, checkfirst=True)
