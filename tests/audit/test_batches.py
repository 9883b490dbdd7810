"""Batch seals: one signed Merkle root per appended batch, events provable from their batch, tampering
caught by `verify` from the seals alone (the checkpoints removed), and one chain under four writers."""

import asyncio
import base64
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from privacy_middleware.audit import AuditLog, AuditWriter, data_access, export, login_attempt, verify
from privacy_middleware.audit.batches import BatchSigner, SealVerifier, unverified
from privacy_middleware.audit.checkpoint import load_public_key
from privacy_middleware.audit.merkle import leaf_hash, tree_root
from privacy_middleware.audit.proofs import EventProof, prove, verify_proof
from privacy_middleware.store import Database
from privacy_middleware.store.audit import audit_batches, audit_events
from support.audit_events import outbox_uids

pytestmark = pytest.mark.anyio


def _login(n: int) -> Any:
    return login_attempt(success=True, subject=f"cust_{n}", ip=f"192.0.2.{n % 200}", device=f"dev-{n}")


def _reveal(n: int) -> Any:
    return data_access(principal="staff_1", subject=f"cust_{n}", purpose="support", categories=["user.financial.card"])


async def _append(database: Database, log: AuditLog, sizes: list[int]) -> None:
    n = 0
    for size in sizes:
        await log.append(database, [log.seal(_login(n + i)) for i in range(size)])
        n += size


async def test_one_signed_seal_per_batch_over_its_leaves_and_the_tree(database: Database, audit_log: AuditLog) -> None:
    await _append(database, audit_log, [3, 1, 7])
    async with database.connect() as conn:
        seals = (await conn.execute(sa.select(audit_batches).order_by(audit_batches.c.first_seq))).all()
        hashes = [bytes(h) for h in (await conn.execute(sa.select(audit_events.c.leaf_hash).order_by("seq"))).scalars()]
    key = load_public_key(audit_log.public_key_pem())
    assert [(s.first_seq, s.tree_size) for s in seals] == [(0, 3), (3, 4), (4, 11)]
    for row in seals:
        claims = jwt.decode(row.seal, key, algorithms=["EdDSA"])  # a standard EdDSA JWS
        seal = SealVerifier([key]).verify(row.seal)
        assert seal is not None and claims["first"] == seal.first == row.first_seq
        assert seal.batch_root == tree_root(hashes[seal.first : seal.end])
        assert seal.root == tree_root(hashes[: seal.size])
        assert len(row.frontier) == 32 * bin(row.tree_size).count("1")  # the frontier kept as an anchor
    assert SealVerifier([Ed25519PrivateKey.generate().public_key()]).verify(seals[0].seal) is None


async def test_an_event_is_proved_from_its_batch_alone(database: Database, audit_log: AuditLog, tmp_path: Path) -> None:
    await _append(database, audit_log, [5, 6])
    async with database.connect() as conn:
        uid = (await conn.execute(sa.select(audit_events.c.uid).where(audit_events.c.seq == 8))).scalar_one()
    proof = await prove(database, uid)
    assert proof is not None and (proof.seq, proof.index) == (8, 3)
    pem = audit_log.public_key_pem()
    assert verify_proof(EventProof.from_json(orjson.loads(orjson.dumps(proof.to_json()))), pem) is None
    forged = EventProof(proof.leaf.replace(b"cust_8", b"cust_9"), proof.seq, proof.index, proof.path, proof.seal)
    assert verify_proof(forged, pem) == "the leaf and its path do not lead to the sealed batch root"
    moved = EventProof(proof.leaf, proof.seq, proof.index - 1, proof.path, proof.seal)
    assert verify_proof(moved, pem) == "the event's index is not in the sealed batch"
    other = Ed25519PrivateKey.generate().public_key()
    from privacy_middleware.audit.checkpoint import public_key_pem

    assert verify_proof(proof, public_key_pem(other)) == "the batch seal is not signed by the trusted key"
    assert await prove(database, "no-such-uid") is None


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from privacy_middleware.cli import main

    code = main(list(argv))
    return code, capsys.readouterr().out


async def test_cli_proves_an_event_and_checks_the_proof(
    tmp_path: Path, audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    try:
        await database.upgrade()
        await _append(database, audit_log, [4])
        async with database.connect() as conn:
            uid = (await conn.execute(sa.select(audit_events.c.uid).where(audit_events.c.seq == 2))).scalar_one()
    finally:
        await database.dispose()
    monkeypatch.setenv("PRIVACY_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    pem = tmp_path / "trusted.pem"
    pem.write_bytes(audit_log.public_key_pem())
    proof_file = str(tmp_path / "proof.json")
    code, out = await asyncio.to_thread(_cli, capsys, "audit", "prove", uid, "--out", proof_file, "--json")
    assert code == 0 and orjson.loads(out)["seq"] == 2
    code, out = await asyncio.to_thread(_cli, capsys, "audit", "verify-proof", proof_file, "--public-key", str(pem))
    assert code == 0 and "proof holds" in out
    body = orjson.loads((tmp_path / "proof.json").read_bytes())
    body["seq"] = 3
    (tmp_path / "proof.json").write_bytes(orjson.dumps(body))
    code, out = await asyncio.to_thread(_cli, capsys, "audit", "verify-proof", proof_file, "--public-key", str(pem))
    assert code == 1 and "not in the sealed batch" in out


@pytest.fixture
async def sealed_only(sqlite_url: str, audit_log: AuditLog, tmp_path: Path) -> Path:
    """An export of three batches (10, 10, 10 leaves) whose checkpoints were removed: seals alone vouch."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        await _append(database, audit_log, [10, 10, 10])
        await export(database, tmp_path / "export")
    finally:
        await database.dispose()
    (tmp_path / "export" / "checkpoints.jsonl").write_bytes(b"")
    return tmp_path / "export"


def _lines(directory: Path) -> list[bytes]:
    return (directory / "events.jsonl").read_bytes().split(b"\n")[:-1]


def _write(directory: Path, lines: list[bytes]) -> None:
    (directory / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def _seals(directory: Path) -> list[str]:
    return [orjson.loads(line)["seal"] for line in (directory / "batches.jsonl").read_bytes().splitlines()]


def _write_seals(directory: Path, tokens: list[str]) -> None:
    (directory / "batches.jsonl").write_bytes(b"".join(orjson.dumps({"seal": t}) + b"\n" for t in tokens))


async def test_seals_alone_verify_an_untouched_export(sealed_only: Path, audit_log: AuditLog) -> None:
    report = verify(sealed_only, audit_log.public_key_pem())
    assert (report.status, report.batches_verified, report.verified_size, report.checkpoints_verified) == (0, 3, 30, 0)


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("edit", (1, 10, 20)),  # content altered, named by its batch's range
        ("delete", (2, 14, None)),  # an unexplained gap at the deleted index
        ("reorder", (1, 21, None)),  # two leaves of one batch swapped
        ("insert", (1, 5, None)),  # a made-up leaf inserted at index 5: index 5 repeated
    ],
)
async def test_tampered_events_are_named_by_the_seals(
    sealed_only: Path, audit_log: AuditLog, tamper: str, expected: tuple[int, int, int | None]
) -> None:
    lines = _lines(sealed_only)
    if tamper == "edit":
        lines[12] = lines[12].replace(b'"cust_12"', b'"cust_99"')
    elif tamper == "delete":
        del lines[14]
    elif tamper == "reorder":
        lines[21], lines[22] = lines[22], lines[21]
    else:
        lines.insert(5, lines[2].replace(b'"seq":2,', b'"seq":5,'))
    _write(sealed_only, lines)
    report = verify(sealed_only, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index, report.bad_range_end) == expected, report.reason


async def test_a_forged_batch_root_is_a_bad_signature(sealed_only: Path, audit_log: AuditLog) -> None:
    tokens = _seals(sealed_only)
    lines = _lines(sealed_only)
    lines[15] = lines[15].replace(b'"cust_15"', b'"cust_00"')
    _write(sealed_only, lines)
    # the attacker re-seals the edited batch with a key of their own...
    seal = unverified(tokens[1])
    hashes = [leaf_hash(line) for line in lines]
    attacker = BatchSigner(Ed25519PrivateKey.generate(), seal.origin)
    forged = attacker.seal(seal.chain, 10, 10, tree_root(hashes[10:20]), 20, tree_root(hashes[:20]), seal.time_us)
    _write_seals(sealed_only, [tokens[0], forged.token, tokens[2]])
    report = verify(sealed_only, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index, report.verified_size) == (3, 10, 10)
    assert "batch seal is not signed by a trusted key" in report.reason
    # ...or edits the root inside the genuine token: the signature no longer covers it
    header, payload, signature = tokens[1].split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["batch_root"] = base64.urlsafe_b64encode(tree_root(hashes[10:20])).rstrip(b"=").decode()
    edited = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    _write_seals(sealed_only, [tokens[0], f"{header}.{edited}.{signature}", tokens[2]])
    assert verify(sealed_only, audit_log.public_key_pem()).status == 3


async def test_a_removed_seal_is_a_gap_and_a_garbled_one_is_malformed(sealed_only: Path, audit_log: AuditLog) -> None:
    tokens = _seals(sealed_only)
    _write_seals(sealed_only, [tokens[0], tokens[2]])
    report = verify(sealed_only, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index) == (2, 10)
    _write_seals(sealed_only, [tokens[0], "not.a.seal", tokens[2]])
    assert verify(sealed_only, audit_log.public_key_pem()).status == 4


async def test_strict_events_wait_for_their_own_batch_not_the_backlog(
    database: Database, make_writer: Any, audit_log: AuditLog
) -> None:
    # a generous strict timeout: this asserts what the strict caller waited for, not how long
    writer: AuditWriter = make_writer(
        database, queue_size=20_000, batch_size=200, flush_interval=5.0, strict_timeout=120.0
    )
    await writer.start()
    for n in range(4000):  # a backlog of twenty bulk batches
        writer.emit(_login(n))
    reveal = _reveal(1)
    await writer.emit_strict(reveal)
    async with database.connect() as conn:
        kinds = (await conn.execute(sa.select(audit_events.c.kind))).scalars().all()
        waiting = await outbox_uids(conn) if database.is_postgres else []
    # durable when emit_strict returned (SQLite: in the chain; PostgreSQL: in the chain or the outbox)...
    assert "api_activity.data_reveal" in kinds or waiting == [reveal.uid]
    assert kinds.count("authentication.logon") < 4000  # ...before the backlog emitted ahead of it
    await writer.stop()
    async with database.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(audit_events))).scalar_one() == 4003
        seqs = {row.uid: row.seq for row in await conn.execute(sa.select(audit_events.c.uid, audit_events.c.seq))}
    assert seqs[reveal.uid] < 4000  # in the chain ahead of the backlog's end


@pytest.mark.postgres
async def test_four_writers_on_separate_connections_make_one_verified_chain(
    postgres_url: str, key_path: Path, side_key: bytes, tmp_path: Path
) -> None:
    databases = [Database(postgres_url) for _ in range(4)]
    try:
        await databases[0].upgrade()
        writers = [
            AuditWriter(
                db,
                AuditLog(key_path, side_key, checkpoint_every=100),
                spool_dir=tmp_path / f"spool-{i}",
                batch_size=50,
                flush_interval=0.005,
                registry=CollectorRegistry(),
                strict_timeout=120.0,  # a loaded machine must not turn this into a 503
            )
            for i, db in enumerate(databases)
        ]
        for writer in writers:
            await writer.start()

        async def run(writer: AuditWriter, base: int) -> None:
            for n in range(400):
                writer.emit(_login(base + n))
                if n % 100 == 0:
                    await writer.emit_strict(_reveal(base + n))
                elif n % 20 == 0:
                    await asyncio.sleep(0.001)

        await asyncio.gather(*(run(w, i * 10_000) for i, w in enumerate(writers)))
        await asyncio.gather(*(w.stop() for w in writers))
        assert all(w.metrics.spooled.total == 0 and w.metrics.dropped.total == 0 for w in writers)
        await export(databases[0], tmp_path / "export")
        report = verify(tmp_path / "export", writers[0].log.public_key_pem())
        total = 4 * (400 + 4 + 2)  # logins, strict reveals, start and stop leaves
        assert (report.status, report.events, report.verified_size, report.unverified_tail) == (0, total, total, 0)
        async with databases[0].connect() as conn:
            seqs = (await conn.execute(sa.select(audit_events.c.seq).order_by("seq"))).scalars().all()
            batches = (await conn.execute(sa.select(audit_batches.c.first_seq, audit_batches.c.tree_size))).all()
        assert seqs == list(range(total))  # one chain: no index forked, repeated or skipped
        assert report.batches_verified == len(batches) and sorted(b.tree_size for b in batches)[-1] == total
    finally:
        for db in databases:
            await db.dispose()
