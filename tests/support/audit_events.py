"""Audit events the store tests append: logins with every sealed kind (username, IP, user agent); the
strict outbox's waiting events; a sink that keeps what is emitted to it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy_middleware.audit import AuditEvent, login_attempt
from privacy_middleware.store.audit_outbox import audit_strict_outbox


def sealed_login(n: int) -> AuditEvent:
    """Login attempt number n: every other one failed, each with all three sealed values."""
    return login_attempt(
        success=n % 2 == 0,
        subject=f"cust_{n}",
        username=f"user{n}@example.org",
        ip=f"198.51.100.{n % 250}",
        user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        device=f"dev-{n}",
    )


async def outbox_uids(conn: AsyncConnection) -> list[str]:
    """The uids of the strict events waiting in the PostgreSQL outbox, oldest first."""
    query = sa.select(audit_strict_outbox.c.uid).order_by(audit_strict_outbox.c.created_us)
    return list((await conn.execute(query)).scalars())


class Sink:
    """An audit sink (`emit`) that keeps the events it is given, in order."""

    def __init__(self) -> None:
        self.emitted: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.emitted.append(event)
