import asyncio
import itertools
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from privacy_middleware.audit import AuditLog, AuditWriter, login_attempt, verify
from privacy_middleware.audit.checkpoint import load_public_key, verify_checkpoint
from privacy_middleware.audit.export import export
from privacy_middleware.audit.merkle import leaf_hash, tree_root
from privacy_middleware.audit.query import reveal_side_record
from privacy_middleware.audit.sealing import commitment
from privacy_middleware.errors import ConfigError
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_checkpoints, audit_events, audit_side_records, audit_signing_keys
from support.audit_events import sealed_login

pytestmark = pytest.mark.anyio


async def test_leaves_are_sequenced_hashed_and_checkpointed(database: Database, audit_log: AuditLog) -> None:
    sealed = [audit_log.seal(sealed_login(n)) for n in range(25)]
    first = await audit_log.append(database, sealed[:12])
    second = await audit_log.append(database, sealed[12:])
    assert (first.first_seq, first.size) == (0, 12)
    assert (second.first_seq, second.size) == (12, 25)
    async with database.connect() as conn:
        rows = (await conn.execute(sa.select(audit_events).order_by(audit_events.c.seq))).all()
        notes = (await conn.execute(sa.select(audit_checkpoints.c.tree_size, audit_checkpoints.c.note))).all()
    assert [r.seq for r in rows] == list(range(25))
    assert all(leaf_hash(bytes(r.leaf)) == bytes(r.leaf_hash) for r in rows)
    # checkpoint_every=10: one per batch that crossed the cadence, each signed over the right root
    key = load_public_key(audit_log.public_key_pem())
    for size, note in notes:
        checkpoint = verify_checkpoint(note, [key])
        assert checkpoint is not None and checkpoint.size == size
        assert checkpoint.root == tree_root([bytes(r.leaf_hash) for r in rows[:size]])
    assert sorted(size for size, _ in notes) == [12, 25]


async def test_raw_personal_values_never_reach_the_leaf_or_the_database_in_clear(
    database: Database, audit_log: AuditLog
) -> None:
    event = login_attempt(success=False, username="alice@example.org", ip="203.0.113.77", user_agent="curl/8.5")
    await audit_log.append(database, [audit_log.seal(event)])
    async with database.connect() as conn:
        leaf = bytes((await conn.execute(sa.select(audit_events.c.leaf))).scalar_one())
        side = (await conn.execute(sa.select(audit_side_records))).all()
    for raw in (b"alice@example.org", b"203.0.113.77", b"curl/8.5"):
        assert raw not in leaf
        assert all(raw not in bytes(row.blob) for row in side)
    assert b"203.0.113.0/24" in leaf  # the coarse hint stays for the subject's own access log
    # the commitments in the leaf open with the side record's salt and the decrypted values
    import orjson

    refs = orjson.loads(leaf)["refs"]
    assert refs["kinds"] == ["ip", "user_agent", "username"]
    values = await reveal_side_record(database, audit_log.sealer, refs["ref"])
    assert values == {"ip": "203.0.113.77", "username": "alice@example.org", "user_agent": "curl/8.5"}
    [row] = side
    salt = bytes(row.salt)
    assert commitment(salt, values) == refs["commit"]
    assert commitment(salt, {**values, "ip": "203.0.113.78"}) != refs["commit"]
    assert commitment(os.urandom(16), values) != refs["commit"]  # without the salt it cannot be checked


async def test_side_record_does_not_open_with_another_key(
    database: Database, audit_log: AuditLog, key_path: Path
) -> None:
    event = login_attempt(success=True, subject="c1", ip="192.0.2.1")
    sealed = audit_log.seal(event)
    await audit_log.append(database, [sealed])
    other = AuditLog(key_path, os.urandom(32))
    assert sealed.side is not None
    with pytest.raises(ValueError, match="does not decrypt"):
        await reveal_side_record(database, other.sealer, sealed.side.ref)


def test_signing_key_is_created_private_and_reused(key_path: Path, side_key: bytes) -> None:
    first = AuditLog(key_path, side_key)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert AuditLog(key_path, side_key).key_id == first.key_id


def test_world_readable_signing_key_is_refused(key_path: Path, side_key: bytes) -> None:
    AuditLog(key_path, side_key)
    key_path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        AuditLog(key_path, side_key)


def test_side_record_key_must_be_aes_256(key_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AuditLog(key_path, b"short")


async def test_key_rotation_is_announced_and_verifies_with_the_first_key(
    database: Database, audit_log: AuditLog, tmp_path: Path
) -> None:
    first_pem = audit_log.public_key_pem()
    await audit_log.append(database, [audit_log.seal(sealed_login(n)) for n in range(3)])
    old = audit_log.key_id
    new = await audit_log.rotate_signing_key(database, tmp_path / "next.pem")
    assert new != old
    await audit_log.append(database, [audit_log.seal(sealed_login(n)) for n in range(3, 15)])
    await audit_log.checkpoint(database, force=True)
    await export(database, tmp_path / "export")
    report = verify(tmp_path / "export", first_pem)
    assert report.status == 0, report.reason
    assert report.verified_size == 16


@pytest.mark.postgres
async def test_concurrent_writers_on_postgres_share_one_sequence(
    postgres_url: str, key_path: Path, side_key: bytes, tmp_path: Path
) -> None:
    """Two instances (two Database objects, two writers) append to one chain at the same time."""
    first, second = Database(postgres_url), Database(postgres_url)
    try:
        await first.upgrade()
        writers = [
            AuditWriter(
                db,
                AuditLog(key_path, side_key, checkpoint_every=50),
                spool_dir=tmp_path / f"spool-{i}",
                batch_size=20,
                flush_interval=0.005,
                registry=CollectorRegistry(),
            )
            for i, db in enumerate((first, second))
        ]
        for writer in writers:
            await writer.start()

        async def run(writer: AuditWriter, base: int) -> None:
            for n in range(300):
                writer.emit(sealed_login(base + n))
                if n % 25 == 0:
                    await asyncio.sleep(0.002)

        await asyncio.gather(run(writers[0], 0), run(writers[1], 1000))
        await asyncio.gather(*(w.stop() for w in writers))
        assert all(w.metrics.spooled.total == 0 for w in writers)
        async with first.connect() as conn:
            rows = (await conn.execute(sa.select(audit_events.c.seq, audit_events.c.subject))).all()
        assert sorted(r.seq for r in rows) == list(range(604))  # 600 events + 2 start + 2 stop leaves
        subjects = {r.subject for r in rows if r.subject}
        assert subjects == {f"cust_{n}" for n in [*range(300), *range(1000, 1300)]}
        origin = [len(r.subject) > 8 for r in sorted(rows) if r.subject]  # cust_1xxx came from writer 2
        switches = sum(1 for a, b in itertools.pairwise(origin) if a != b)
        assert switches > 4  # the two instances really interleaved their batches
        await export(first, tmp_path / "pg-export")
        report = verify(tmp_path / "pg-export", writers[0].log.public_key_pem())
        assert report.status == 0, report.reason
        assert report.verified_size == 604
    finally:
        await first.dispose()
        await second.dispose()


async def test_concurrent_appends_on_one_database_never_fork(database: Database, audit_log: AuditLog) -> None:
    async def run(base: int) -> None:
        for batch in range(5):
            await audit_log.append(database, [audit_log.seal(sealed_login(base + batch * 3 + i)) for i in range(3)])

    await asyncio.gather(run(0), run(100), run(200))
    async with database.connect() as conn:
        rows = (await conn.execute(sa.select(audit_events.c.seq, audit_events.c.leaf_hash))).all()
        checkpoints = (
            await conn.execute(sa.select(audit_checkpoints.c.tree_size, audit_checkpoints.c.root_hash))
        ).all()
    rows.sort()
    assert [r.seq for r in rows] == list(range(45))
    assert checkpoints
    for size, root in checkpoints:
        assert bytes(root) == tree_root([bytes(r.leaf_hash) for r in rows[:size]])


def test_chain_names_are_short_plain_names(key_path: Path, side_key: bytes) -> None:
    for bad in ("", "Shop Chain", "x" * 65, "../etc"):
        with pytest.raises(ValueError):
            AuditLog(key_path, side_key, chain=bad)
    assert AuditLog(key_path, side_key, chain="shop-eu.2").chain == "shop-eu.2"


async def test_an_append_inside_a_transaction_that_rolls_back_leaves_no_trace(
    database: Database, audit_log: AuditLog
) -> None:
    # Retention appends its marker inside its own transaction: the sequencer's statements (one
    # call on the driver's thread on SQLite) must belong to that transaction and undo with it.
    await audit_log.append(database, [audit_log.seal(sealed_login(n)) for n in range(3)])
    with pytest.raises(RuntimeError):
        async with database.begin() as conn:
            result = await audit_log.append_in(database, conn, [audit_log.seal(sealed_login(n)) for n in range(3, 9)])
            assert (result.first_seq, result.size) == (3, 9)
            raise RuntimeError("the caller's transaction fails after the append")
    head = await audit_log.head(database)
    assert head is not None and head.size == 3
    async with database.connect() as conn:
        seqs = (await conn.execute(sa.select(audit_events.c.seq).order_by(audit_events.c.seq))).scalars().all()
        sides = (await conn.execute(sa.select(sa.func.count()).select_from(audit_side_records))).scalar_one()
    assert seqs == [0, 1, 2] and sides == 3
    after = await audit_log.append(database, [audit_log.seal(sealed_login(9))])
    assert (after.first_seq, after.size) == (3, 4)
    assert await audit_log.self_check(database) is None


async def test_a_batch_the_store_refuses_moves_nothing(database: Database, audit_log: AuditLog) -> None:
    first = [audit_log.seal(sealed_login(n)) for n in range(4)]
    await audit_log.append(database, first)
    # the same event id twice is refused by the store as a whole batch, side records included
    with pytest.raises(Exception) as refused:
        await audit_log.append(database, [audit_log.seal(sealed_login(5)), first[1]])
    assert "IntegrityError" in type(refused.value).__name__ or "Unique" in type(refused.value).__name__
    head = await audit_log.head(database)
    assert head is not None and head.size == 4
    async with database.connect() as conn:
        sides = (await conn.execute(sa.select(sa.func.count()).select_from(audit_side_records))).scalar_one()
    assert sides == 4
    assert (await audit_log.append(database, [audit_log.seal(sealed_login(6))])).first_seq == 4


def test_side_record_references_follow_the_sealing_order_and_stay_unique(audit_log: AuditLog) -> None:
    # time first, so the store appends side records at the end of their key index
    refs = [audit_log.seal(sealed_login(n)).side.ref for n in range(2000)]  # type: ignore[union-attr]
    assert len(set(refs)) == 2000
    assert all(len(ref) == 32 and int(ref, 16) >= 0 for ref in refs)
    assert [ref[:12] for ref in refs] == sorted(ref[:12] for ref in refs)


async def test_a_signing_key_first_registered_in_a_rolled_back_transaction_is_stored_later(
    database: Database, audit_log: AuditLog, tmp_path: Path
) -> None:
    # The first checkpoint of a process registers its public key; if that happens inside a
    # transaction that rolls back, the key must not be remembered as stored.
    with pytest.raises(RuntimeError):
        async with database.begin() as conn:
            await audit_log.append_in(database, conn, [audit_log.seal(sealed_login(0))], force_checkpoint=True)
            raise RuntimeError("the caller's transaction fails after the append")
    await audit_log.append(database, [audit_log.seal(sealed_login(n)) for n in range(1, 4)])
    await audit_log.checkpoint(database, force=True)
    async with database.connect() as conn:
        stored = (await conn.execute(sa.select(audit_signing_keys.c.key_id))).scalars().all()
        signed_by = (await conn.execute(sa.select(audit_checkpoints.c.key_id))).scalars().all()
    assert signed_by and set(signed_by) <= set(stored) == {audit_log.key_id}
    await export(database, tmp_path / "export")
    report = verify(tmp_path / "export", audit_log.public_key_pem())
    assert report.status == 0, report.reason
