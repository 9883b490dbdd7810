"""Checkpoints witnessed outside the store catch what the store alone cannot: a tail removed with
its checkpoints, and a log rolled back to a backup and rewritten (signed again with the stolen key)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy_middleware.audit import AuditLog, export, login_attempt, verify
from privacy_middleware.audit.checkpoint import load_public_key, parse_checkpoint, verify_checkpoint
from privacy_middleware.audit.verify import verify_with_witness
from privacy_middleware.breach.witness import WitnessRelay
from privacy_middleware.breach.witness_server import WitnessApp, WitnessStore
from privacy_middleware.cli import main as cli
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_batches, audit_chains, audit_checkpoints, audit_events

from .conftest import serve_in_thread

pytestmark = pytest.mark.anyio


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit-signing.pem", os.urandom(32), checkpoint_every=10, checkpoint_interval=3600)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}")
    await db.upgrade()
    yield db
    await db.dispose()


@pytest.fixture
def witness(tmp_path: Path, log: AuditLog) -> Iterator[tuple[str, WitnessStore, Ed25519PrivateKey]]:
    key = Ed25519PrivateKey.generate()
    store = WitnessStore(tmp_path / "witnessed.jsonl")
    app = WitnessApp([load_public_key(log.public_key_pem())], key, store, name="witness.example")
    with serve_in_thread(app) as url:
        yield url + "/checkpoints", store, key


async def append(database: Database, log: AuditLog, first: int, count: int, tag: str = "cust") -> None:
    events = [login_attempt(success=True, subject=f"{tag}_{i}") for i in range(first, first + count)]
    await log.append(database, [log.seal(e) for e in events])


async def tamper(database: Database, keep: int) -> None:
    """What an intruder with write access does: drop leaves from `keep` on, their batch seals and checkpoints."""
    async with database.begin() as conn:
        await conn.execute(sa.delete(audit_events).where(audit_events.c.seq >= keep))
        await conn.execute(sa.delete(audit_batches).where(audit_batches.c.first_seq >= keep))
        await conn.execute(sa.delete(audit_checkpoints).where(audit_checkpoints.c.tree_size > keep))


async def test_relay_delivers_checkpoints_to_the_witness_and_the_webhook(
    database: Database, log: AuditLog, witness: tuple[str, WitnessStore, Ed25519PrivateKey]
) -> None:
    url, store, key = witness
    delivered: list[tuple[str, str, dict[str, Any]]] = []
    async with httpx.AsyncClient() as http:
        relay = WitnessRelay(database, witness_url=url, http=http, deliver=lambda *a: delivered.append(a))
        await append(database, log, 0, 10)
        assert await relay.poll() == 1
        await append(database, log, 10, 10)
        await append(database, log, 20, 10)
        assert await relay.poll() == 2
        assert await relay.poll() == 0
    assert [d[2]["checkpoint"]["size"] for d in delivered] == [10, 20, 30]
    notes = store.notes()
    assert len(notes) == 3 and len(relay.cosigned) == 3
    # the witness countersigned with its own key, and the log's signature still verifies
    assert verify_checkpoint(notes[-1], [load_public_key(log.public_key_pem())]) is not None
    checkpoint, signatures = parse_checkpoint(notes[-1])
    [(_, _, cosignature)] = [s for s in signatures if s[0] == "witness.example"]
    key.public_key().verify(cosignature, checkpoint.body.encode())  # raises if not the witness's


async def test_tail_truncation_verifies_alone_but_not_against_the_witness(
    database: Database,
    log: AuditLog,
    witness: tuple[str, WitnessStore, Ed25519PrivateKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, store, _ = witness
    async with httpx.AsyncClient() as http:
        relay = WitnessRelay(database, witness_url=url, http=http, deliver=None)
        await append(database, log, 0, 10)
        await relay.poll()
        await append(database, log, 10, 10)
        await relay.poll()
    await tamper(database, keep=10)
    out = tmp_path / "export"
    await export(database, out)
    pem = log.public_key_pem()
    assert verify(out, pem).status == 0  # the store alone cannot tell
    report = verify_with_witness(out, pem, store.notes())
    assert report.status == 5 and report.result == "witness_mismatch"
    assert "truncated" in report.reason and report.first_bad_index == 10
    (tmp_path / "key.pem").write_bytes(pem)
    capsys.readouterr()
    assert cli(["audit", "verify", str(out), "--public-key", str(tmp_path / "key.pem"), "--witness", url]) == 5
    assert cli(["audit", "verify", str(out), "--public-key", str(tmp_path / "key.pem")]) == 0


async def test_rollback_and_rewrite_is_refused_by_the_witness_and_detected(
    database: Database, log: AuditLog, witness: tuple[str, WitnessStore, Ed25519PrivateKey], tmp_path: Path
) -> None:
    url, store, _ = witness
    async with httpx.AsyncClient() as http:
        relay = WitnessRelay(database, witness_url=url, http=http, deliver=None)
        await append(database, log, 0, 10)
        await relay.poll()
        async with database.connect() as conn:
            backup = (await conn.execute(sa.select(audit_chains))).mappings().one()
        await append(database, log, 10, 10)
        await relay.poll()
        assert len(store.notes()) == 2
        # roll back to the backup and write another history of the same length, signed again
        await tamper(database, keep=10)
        async with database.begin() as conn:
            await conn.execute(sa.update(audit_chains).values(**dict(backup)))
        await append(database, log, 10, 10, tag="other")
        await relay.poll()
        assert len(store.notes()) == 2  # another root for size 20: the witness refuses it (409)
        await append(database, log, 20, 5, tag="other")
        await log.checkpoint(database, force=True)
        await relay.poll()
    # a larger tree is accepted (the witness takes no consistency proofs); the verifier checks it
    assert [verify_checkpoint(n, [load_public_key(log.public_key_pem())]).size for n in store.notes()] == [10, 20, 25]
    out = tmp_path / "export"
    await export(database, out)
    assert verify(out, log.public_key_pem()).status == 0
    (tmp_path / "witnessed.copy.jsonl").write_bytes((tmp_path / "witnessed.jsonl").read_bytes())
    report = verify_with_witness(out, log.public_key_pem(), store.notes())
    assert report.status == 5 and "rolled back" in report.reason and report.bad_range_end == 20
    (tmp_path / "key.pem").write_bytes(log.public_key_pem())
    code = cli(
        [
            "audit",
            "verify",
            str(out),
            "--public-key",
            str(tmp_path / "key.pem"),
            "--witness",
            str(tmp_path / "witnessed.copy.jsonl"),
        ]
    )
    assert code == 5


async def test_an_untouched_log_matches_its_witness(
    database: Database, log: AuditLog, witness: tuple[str, WitnessStore, Ed25519PrivateKey], tmp_path: Path
) -> None:
    url, store, _ = witness
    async with httpx.AsyncClient() as http:
        relay = WitnessRelay(database, witness_url=url, http=http, deliver=None)
        for start in range(0, 30, 10):
            await append(database, log, start, 10)
            await relay.poll()
    await append(database, log, 30, 4)  # an unsigned tail is fine
    out = tmp_path / "export"
    await export(database, out)
    report = verify_with_witness(out, log.public_key_pem(), store.notes())
    assert report.status == 0 and "3 witnessed" in report.reason
