"""Guest tables: order-access capabilities bound to guest subjects, and one-time e-mail codes.

Neither a capability nor an e-mail address is stored: only keyed hashes of them (computed by
the guest service), so a copy of these tables names nobody and grants nothing.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from .database import Database
from .tables import metadata

guest_capabilities = sa.Table(
    "privacy_guest_capabilities",
    metadata,
    sa.Column("capability_hash", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

guest_codes = sa.Table(
    "privacy_guest_codes",
    metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
)

GUEST_TABLES = (guest_capabilities, guest_codes)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


async def bind_capability(db: Database, capability_hash: str, subject: str, *, days: int, now: dt.datetime) -> None:
    async with db.begin() as conn:
        await conn.execute(sa.delete(guest_capabilities).where(guest_capabilities.c.capability_hash == capability_hash))
        await conn.execute(
            guest_capabilities.insert().values(
                capability_hash=capability_hash,
                subject=subject,
                created_at=now,
                expires_at=now + dt.timedelta(days=days),
            )
        )


async def capability_subject(db: Database, capability_hash: str, *, now: dt.datetime) -> str | None:
    async with db.connect() as conn:
        row = (
            await conn.execute(
                sa.select(guest_capabilities.c.subject, guest_capabilities.c.expires_at).where(
                    guest_capabilities.c.capability_hash == capability_hash
                )
            )
        ).first()
    if row is None or _aware(row.expires_at) <= now:
        return None
    return str(row.subject)


async def forget_guest(db: Database, subject: str) -> int:
    async with db.begin() as conn:
        result = await conn.execute(sa.delete(guest_capabilities).where(guest_capabilities.c.subject == subject))
        return int(result.rowcount or 0)


async def store_code(db: Database, email_hash: str, code_hash: str, *, expires_at: dt.datetime) -> None:
    async with db.begin() as conn:
        await conn.execute(sa.delete(guest_codes).where(guest_codes.c.email_hash == email_hash))
        await conn.execute(
            guest_codes.insert().values(email_hash=email_hash, code_hash=code_hash, expires_at=expires_at, attempts=0)
        )


async def take_code(db: Database, email_hash: str, *, max_attempts: int, now: dt.datetime) -> tuple[str, int] | None:
    """(code hash, attempts so far) of a live code, counting this attempt; None when none is live.

    One atomic UPDATE ... RETURNING, so instances checking codes at the same time never let more
    than `max_attempts` tries through."""
    async with db.begin() as conn:
        row = (
            await conn.execute(
                guest_codes.update()
                .where(
                    guest_codes.c.email_hash == email_hash,
                    guest_codes.c.attempts < max_attempts,
                    guest_codes.c.expires_at > now,
                )
                .values(attempts=guest_codes.c.attempts + 1)
                .returning(guest_codes.c.code_hash, guest_codes.c.attempts)
            )
        ).first()
    if row is None:
        return None
    return str(row.code_hash), int(row.attempts)


async def drop_code(db: Database, email_hash: str) -> None:
    async with db.begin() as conn:
        await conn.execute(sa.delete(guest_codes).where(guest_codes.c.email_hash == email_hash))
