"""Key store tables and repository functions: wrapped tenant keys, wrapped subject keys,
erasure tombstones and the token vault.

Nothing here is a cleartext key or a subject identifier: keys are stored wrapped, subjects
appear only as keyed HMACs (`subject_hash`, `kid_hash`) computed by the crypto layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import metadata

KEK = "kek"
INDEX = "index"

tenant_keys = sa.Table(
    "privacy_tenant_keys",
    metadata,
    sa.Column("tenant", sa.String(200), primary_key=True),
    sa.Column("purpose", sa.String(16), primary_key=True),
    sa.Column("generation", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("root_version", sa.String(512), nullable=False),
    sa.Column("wrapped", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rewrapped_at", sa.DateTime(timezone=True), nullable=True),
)

subject_keys = sa.Table(
    "privacy_subject_keys",
    metadata,
    sa.Column("kid", sa.String(16), primary_key=True),
    sa.Column("tenant", sa.String(200), nullable=False),
    sa.Column("subject_hash", sa.String(64), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rewrapped_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("tenant", "subject_hash"),
    sa.Index("ix_privacy_subject_keys_tenant_generation", "tenant", "generation"),
)

key_tombstones = sa.Table(
    "privacy_key_tombstones",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(200), nullable=False),
    sa.Column("subject_hash", sa.String(64), nullable=False),
    sa.Column("kid_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_privacy_key_tombstones_tenant_subject", "tenant", "subject_hash"),
)

token_vault = sa.Table(
    "privacy_token_vault",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(200), nullable=False),
    sa.Column("kid", sa.String(16), nullable=False, index=True),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The data category the token stands for (an export lists it); NULL for tokens made before it was kept.
    sa.Column("category", sa.String(200), nullable=True),
    # Keyed hash of (subject, category, value) for tokens the policy wants deterministic; NULL otherwise.
    sa.Column("lookup", sa.String(64), nullable=True),
    sa.Index("ix_privacy_token_vault_lookup", "tenant", "lookup", unique=True),
)

KEY_TABLES = (tenant_keys, subject_keys, key_tombstones, token_vault)


@dataclass(frozen=True, slots=True)
class TenantKeyRow:
    tenant: str
    purpose: str
    generation: int
    root_version: str
    wrapped: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SubjectKeyRow:
    kid: str
    tenant: str
    subject_hash: str
    generation: int
    wrapped: bytes
    created_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _insert_ignoring_conflict(conn: AsyncConnection, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, so a lost race is a no-op instead of an aborted transaction."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _tenant_row(row: sa.Row[Any]) -> TenantKeyRow:
    return TenantKeyRow(row.tenant, row.purpose, row.generation, row.root_version, row.wrapped, row.created_at)


def _subject_row(row: sa.Row[Any]) -> SubjectKeyRow:
    return SubjectKeyRow(row.kid, row.tenant, row.subject_hash, row.generation, bytes(row.wrapped), row.created_at)


# -- tenant keys ---------------------------------------------------------------------------


async def tenant_key_rows(conn: AsyncConnection, tenant: str, purpose: str) -> list[TenantKeyRow]:
    result = await conn.execute(
        sa.select(tenant_keys)
        .where(tenant_keys.c.tenant == tenant, tenant_keys.c.purpose == purpose)
        .order_by(tenant_keys.c.generation)
    )
    return [_tenant_row(row) for row in result]


async def tenant_key(conn: AsyncConnection, tenant: str, purpose: str, generation: int) -> TenantKeyRow | None:
    result = await conn.execute(
        sa.select(tenant_keys).where(
            tenant_keys.c.tenant == tenant,
            tenant_keys.c.purpose == purpose,
            tenant_keys.c.generation == generation,
        )
    )
    row = result.first()
    return _tenant_row(row) if row else None


async def insert_tenant_key(
    conn: AsyncConnection, *, tenant: str, purpose: str, generation: int, root_version: str, wrapped: str
) -> bool:
    """Store a new wrapped tenant key; False when another instance stored that generation first."""
    statement = _insert_ignoring_conflict(conn, tenant_keys).values(
        tenant=tenant,
        purpose=purpose,
        generation=generation,
        root_version=root_version,
        wrapped=wrapped,
        created_at=_now(),
    )
    result = await conn.execute(statement)
    return bool(result.rowcount)


async def rewrap_tenant_key(
    conn: AsyncConnection, *, tenant: str, purpose: str, generation: int, root_version: str, wrapped: str
) -> None:
    await conn.execute(
        tenant_keys.update()
        .where(
            tenant_keys.c.tenant == tenant,
            tenant_keys.c.purpose == purpose,
            tenant_keys.c.generation == generation,
        )
        .values(root_version=root_version, wrapped=wrapped, rewrapped_at=_now())
    )


# -- subject keys --------------------------------------------------------------------------


async def subject_key_by_kid(conn: AsyncConnection, kid: str) -> SubjectKeyRow | None:
    row = (await conn.execute(sa.select(subject_keys).where(subject_keys.c.kid == kid))).first()
    return _subject_row(row) if row else None


async def subject_key_by_subject(conn: AsyncConnection, tenant: str, subject_hash: str) -> SubjectKeyRow | None:
    result = await conn.execute(
        sa.select(subject_keys).where(subject_keys.c.tenant == tenant, subject_keys.c.subject_hash == subject_hash)
    )
    row = result.first()
    return _subject_row(row) if row else None


async def insert_subject_key(
    conn: AsyncConnection, *, kid: str, tenant: str, subject_hash: str, generation: int, wrapped: bytes
) -> bool:
    """Store a new wrapped subject key; False when the subject already has one (a lost race)."""
    statement = _insert_ignoring_conflict(conn, subject_keys).values(
        kid=kid,
        tenant=tenant,
        subject_hash=subject_hash,
        generation=generation,
        wrapped=wrapped,
        created_at=_now(),
    )
    result = await conn.execute(statement)
    return bool(result.rowcount)


async def delete_subject_keys(conn: AsyncConnection, tenant: str, subject_hash: str) -> list[str]:
    """Destroy the subject's wrapped keys (crypto-shredding); returns the kids destroyed."""
    kids = list(
        (
            await conn.execute(
                sa.select(subject_keys.c.kid).where(
                    subject_keys.c.tenant == tenant, subject_keys.c.subject_hash == subject_hash
                )
            )
        ).scalars()
    )
    if kids:
        await conn.execute(subject_keys.delete().where(subject_keys.c.kid.in_(kids)))
    return kids


async def delete_subject_key(conn: AsyncConnection, kid: str) -> bool:
    result = await conn.execute(subject_keys.delete().where(subject_keys.c.kid == kid))
    return bool(result.rowcount)


async def subject_keys_for_hash(conn: AsyncConnection, tenant: str, subject_hash: str) -> list[SubjectKeyRow]:
    result = await conn.execute(
        sa.select(subject_keys).where(subject_keys.c.tenant == tenant, subject_keys.c.subject_hash == subject_hash)
    )
    return [_subject_row(row) for row in result]


async def subject_keys_not_on(
    conn: AsyncConnection, tenant: str, generation: int, *, after_kid: str, limit: int
) -> list[SubjectKeyRow]:
    """A batch of subject keys still wrapped under another generation, in kid order (resumable)."""
    result = await conn.execute(
        sa.select(subject_keys)
        .where(
            subject_keys.c.tenant == tenant,
            subject_keys.c.generation != generation,
            subject_keys.c.kid > after_kid,
        )
        .order_by(subject_keys.c.kid)
        .limit(limit)
    )
    return [_subject_row(row) for row in result]


async def rewrap_subject_key(
    conn: AsyncConnection, *, kid: str, old_generation: int, new_generation: int, wrapped: bytes
) -> bool:
    """Replace the wrapping only if nobody changed the row meanwhile."""
    result = await conn.execute(
        subject_keys.update()
        .where(subject_keys.c.kid == kid, subject_keys.c.generation == old_generation)
        .values(generation=new_generation, wrapped=wrapped, rewrapped_at=_now())
    )
    return bool(result.rowcount)


async def subject_key_counts(conn: AsyncConnection, tenant: str) -> dict[int, int]:
    result = await conn.execute(
        sa.select(subject_keys.c.generation, sa.func.count())
        .where(subject_keys.c.tenant == tenant)
        .group_by(subject_keys.c.generation)
    )
    return {int(generation): int(count) for generation, count in result}


# -- tombstones ----------------------------------------------------------------------------


async def insert_tombstones(conn: AsyncConnection, tenant: str, entries: Iterable[tuple[str, str | None]]) -> None:
    """Record erasures as (subject_hash, kid_hash or None); repeats of a kid_hash are ignored."""
    now = _now()
    for subject_hash, kid_hash in entries:
        await conn.execute(
            _insert_ignoring_conflict(conn, key_tombstones).values(
                tenant=tenant, subject_hash=subject_hash, kid_hash=kid_hash, erased_at=now
            )
        )


async def kid_tombstoned(conn: AsyncConnection, kid_hash: str) -> bool:
    result = await conn.execute(sa.select(key_tombstones.c.id).where(key_tombstones.c.kid_hash == kid_hash).limit(1))
    return result.first() is not None


async def subject_tombstoned(conn: AsyncConnection, tenant: str, subject_hash: str) -> bool:
    result = await conn.execute(
        sa.select(key_tombstones.c.id)
        .where(key_tombstones.c.tenant == tenant, key_tombstones.c.subject_hash == subject_hash)
        .limit(1)
    )
    return result.first() is not None


async def tombstone_entries(conn: AsyncConnection, tenant: str) -> set[tuple[str, str | None]]:
    result = await conn.execute(
        sa.select(key_tombstones.c.subject_hash, key_tombstones.c.kid_hash).where(key_tombstones.c.tenant == tenant)
    )
    return {(row.subject_hash, row.kid_hash) for row in result}


async def tombstone_count(conn: AsyncConnection, tenant: str) -> int:
    result = await conn.execute(
        sa.select(sa.func.count()).select_from(key_tombstones).where(key_tombstones.c.tenant == tenant)
    )
    return int(result.scalar_one())


# -- token vault ---------------------------------------------------------------------------


async def insert_token(
    conn: AsyncConnection,
    *,
    token_hash: str,
    tenant: str,
    kid: str,
    envelope: str,
    category: str | None = None,
    lookup: str | None = None,
) -> None:
    await conn.execute(
        token_vault.insert().values(
            token_hash=token_hash,
            tenant=tenant,
            kid=kid,
            envelope=envelope,
            created_at=_now(),
            category=category,
            lookup=lookup,
        )
    )


async def insert_token_once(
    conn: AsyncConnection,
    *,
    token_hash: str,
    tenant: str,
    kid: str,
    envelope: str,
    category: str,
    lookup: str | None,
) -> bool:
    """Store a token unless its hash or its deterministic lookup exists (a collision or a lost race): False then."""
    statement = _insert_ignoring_conflict(conn, token_vault).values(
        token_hash=token_hash,
        tenant=tenant,
        kid=kid,
        envelope=envelope,
        created_at=_now(),
        category=category,
        lookup=lookup,
    )
    return bool((await conn.execute(statement)).rowcount)


async def token_by_lookup(conn: AsyncConnection, tenant: str, lookup: str) -> str | None:
    """The token hash stored for a deterministic lookup, if any."""
    result = await conn.execute(
        sa.select(token_vault.c.token_hash).where(token_vault.c.tenant == tenant, token_vault.c.lookup == lookup)
    )
    return result.scalar_one_or_none()


async def tokens_of_kids(conn: AsyncConnection, kids: Sequence[str]) -> list[tuple[str | None, datetime]]:
    """(category, created_at) of every vault token under the given subject keys, oldest first."""
    if not kids:
        return []
    result = await conn.execute(
        sa.select(token_vault.c.category, token_vault.c.created_at)
        .where(token_vault.c.kid.in_(list(kids)))
        .order_by(token_vault.c.created_at)
    )
    return [(row.category, row.created_at) for row in result]


async def token_envelope(conn: AsyncConnection, tenant: str, token_hash: str) -> str | None:
    result = await conn.execute(
        sa.select(token_vault.c.envelope).where(token_vault.c.token_hash == token_hash, token_vault.c.tenant == tenant)
    )
    return result.scalar_one_or_none()


async def delete_tokens(conn: AsyncConnection, kids: Sequence[str]) -> int:
    if not kids:
        return 0
    result = await conn.execute(token_vault.delete().where(token_vault.c.kid.in_(list(kids))))
    return int(result.rowcount)


async def token_count(conn: AsyncConnection, tenant: str) -> int:
    result = await conn.execute(
        sa.select(sa.func.count()).select_from(token_vault).where(token_vault.c.tenant == tenant)
    )
    return int(result.scalar_one())
