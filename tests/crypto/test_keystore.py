"""The key store repository on real SQLite and PostgreSQL."""

import pytest

from privacy_middleware.store import Database
from privacy_middleware.store import keys as store

pytestmark = pytest.mark.anyio


async def test_tenant_key_generations_are_created_once(database: Database) -> None:
    async with database.begin() as conn:
        assert await store.insert_tenant_key(
            conn, tenant="shop", purpose=store.KEK, generation=1, root_version="1", wrapped="w1"
        )
        assert not await store.insert_tenant_key(
            conn, tenant="shop", purpose=store.KEK, generation=1, root_version="1", wrapped="other"
        )
        assert await store.insert_tenant_key(
            conn, tenant="shop", purpose=store.KEK, generation=2, root_version="2", wrapped="w2"
        )
        await store.rewrap_tenant_key(
            conn, tenant="shop", purpose=store.KEK, generation=1, root_version="2", wrapped="w1-again"
        )
    async with database.connect() as conn:
        rows = await store.tenant_key_rows(conn, "shop", store.KEK)
        assert [(r.generation, r.root_version, r.wrapped) for r in rows] == [
            (1, "2", "w1-again"),
            (2, "2", "w2"),
        ]
        assert await store.tenant_key_rows(conn, "other", store.KEK) == []


async def test_one_subject_key_per_subject_and_optimistic_rewrap(database: Database) -> None:
    async with database.begin() as conn:
        assert await store.insert_subject_key(
            conn, kid="AAAAAAAAAAA", tenant="shop", subject_hash="h1", generation=1, wrapped=b"\x00" * 60
        )
        assert not await store.insert_subject_key(
            conn, kid="BBBBBBBBBBB", tenant="shop", subject_hash="h1", generation=1, wrapped=b"\x01" * 60
        )
        assert await store.insert_subject_key(
            conn, kid="CCCCCCCCCCC", tenant="shop", subject_hash="h2", generation=1, wrapped=b"\x02" * 60
        )
    async with database.begin() as conn:
        assert await store.rewrap_subject_key(
            conn, kid="AAAAAAAAAAA", old_generation=1, new_generation=2, wrapped=b"\x09" * 60
        )
        # a second rewrap from the stale generation changes nothing
        assert not await store.rewrap_subject_key(
            conn, kid="AAAAAAAAAAA", old_generation=1, new_generation=2, wrapped=b"\x0a" * 60
        )
    async with database.connect() as conn:
        row = await store.subject_key_by_kid(conn, "AAAAAAAAAAA")
        assert row is not None and row.wrapped == b"\x09" * 60 and row.generation == 2
        assert await store.subject_key_counts(conn, "shop") == {1: 1, 2: 1}
        batch = await store.subject_keys_not_on(conn, "shop", 2, after_kid="", limit=10)
        assert [r.kid for r in batch] == ["CCCCCCCCCCC"]
        assert await store.subject_keys_not_on(conn, "shop", 2, after_kid="CCCCCCCCCCC", limit=10) == []


async def test_erasure_rows_tombstones_and_tokens(database: Database) -> None:
    async with database.begin() as conn:
        await store.insert_subject_key(
            conn, kid="AAAAAAAAAAA", tenant="shop", subject_hash="h1", generation=1, wrapped=b"k" * 60
        )
        await store.insert_token(conn, token_hash="t1", tenant="shop", kid="AAAAAAAAAAA", envelope="pe1.x.y")
        await store.insert_token(conn, token_hash="t2", tenant="shop", kid="OTHEROTHERO", envelope="pe1.x.z")
    async with database.begin() as conn:
        kids = await store.delete_subject_keys(conn, "shop", "h1")
        assert kids == ["AAAAAAAAAAA"]
        assert await store.delete_tokens(conn, kids) == 1
        await store.insert_tombstones(conn, "shop", [("h1", "kidhash1"), ("h1", "kidhash1"), ("h9", None)])
        await store.insert_tombstones(conn, "shop", [("h9", None)])
    async with database.connect() as conn:
        assert await store.subject_key_by_subject(conn, "shop", "h1") is None
        assert await store.token_envelope(conn, "shop", "t1") is None
        assert await store.token_envelope(conn, "shop", "t2") == "pe1.x.z"
        assert await store.token_envelope(conn, "other", "t2") is None
        assert await store.kid_tombstoned(conn, "kidhash1")
        assert not await store.kid_tombstoned(conn, "kidhash2")
        assert await store.subject_tombstoned(conn, "shop", "h9")
        assert not await store.subject_tombstoned(conn, "other", "h9")
        assert await store.tombstone_entries(conn, "shop") == {("h1", "kidhash1"), ("h9", None)}
        assert await store.tombstone_count(conn, "shop") == 3
        assert await store.token_count(conn, "shop") == 1
