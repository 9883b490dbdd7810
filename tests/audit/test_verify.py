import base64
import shutil
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy_middleware.audit import AuditLog, consent_change, export, login_attempt, verify, verify_main
from privacy_middleware.audit.checkpoint import public_key_pem, sign_checkpoint
from privacy_middleware.audit.merkle import leaf_hash
from privacy_middleware.audit.verify import _special_lines
from privacy_middleware.keyfiles import load_or_create_signing_key
from privacy_middleware.store import Database

pytestmark = pytest.mark.anyio

N = 40  # 40 events with checkpoint_every=10 -> checkpoints at 10, 20, 30, 40


async def _exported(database: Database, log: AuditLog, out: Path, n: int = N) -> Path:
    for start in range(0, n, 10):
        await log.append(
            database,
            [
                log.seal(login_attempt(success=True, subject=f"cust_{i}", ip=f"192.0.2.{i % 200}"))
                for i in range(start, min(n, start + 10))
            ],
        )
    await log.checkpoint(database, force=True)
    await export(database, out)
    return out


def _lines(directory: Path) -> list[bytes]:
    return (directory / "events.jsonl").read_bytes().split(b"\n")[:-1]


def _write_lines(directory: Path, lines: list[bytes]) -> None:
    (directory / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")


@pytest.fixture
async def exported(sqlite_url: str, audit_log: AuditLog, tmp_path: Path) -> Path:
    """Tampering tests need one export; verification itself never touches a database."""
    database = Database(sqlite_url)
    try:
        await database.upgrade()
        return await _exported(database, audit_log, tmp_path / "export")
    finally:
        await database.dispose()


async def test_untouched_export_is_intact(database: Database, audit_log: AuditLog, tmp_path: Path) -> None:
    exported = await _exported(database, audit_log, tmp_path / "export")
    report = verify(exported, audit_log.public_key_pem())
    assert report.to_json() | {"warnings": []} == {
        "status": 0,
        "result": "intact",
        "reason": "all checkpoints and batch seals verified",
        "first_bad_index": None,
        "bad_range_end": None,
        "events": N,
        "checkpoints_verified": 4,
        "batches_verified": 4,
        "verified_size": N,
        "dropped": 0,
        "purged": 0,
        "unverified_tail": 0,
        "warnings": [],
    }
    assert (exported / "public_key.pem").read_bytes() == audit_log.public_key_pem()
    assert b"192.0.2.7" not in (exported / "events.jsonl").read_bytes()


async def test_altered_value_is_content_altered_in_its_checkpoint_range(exported: Path, audit_log: AuditLog) -> None:
    lines = _lines(exported)
    lines[12] = lines[12].replace(b'"cust_12"', b'"cust_99"')
    _write_lines(exported, lines)
    report = verify(exported, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index, report.bad_range_end) == (1, 10, 20)


async def test_any_single_byte_flip_in_the_events_is_detected(exported: Path, audit_log: AuditLog) -> None:
    original = (exported / "events.jsonl").read_bytes()
    pem = audit_log.public_key_pem()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(min_value=0, max_value=len(original) - 1), st.integers(min_value=1, max_value=255))
    def flip(position: int, mask: int) -> None:
        data = bytearray(original)
        data[position] ^= mask
        (exported / "events.jsonl").write_bytes(bytes(data))
        assert verify(exported, pem).status in (1, 2)

    flip()


async def test_deleted_middle_event_is_an_unexplained_gap(exported: Path, audit_log: AuditLog) -> None:
    lines = _lines(exported)
    del lines[17]
    _write_lines(exported, lines)
    report = verify(exported, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index) == (2, 17)


async def test_reordered_events_are_content_altered(exported: Path, audit_log: AuditLog) -> None:
    lines = _lines(exported)
    lines[25], lines[26] = lines[26], lines[25]
    _write_lines(exported, lines)
    report = verify(exported, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index) == (1, 25)


async def test_cut_tail_is_truncation(exported: Path, audit_log: AuditLog) -> None:
    _write_lines(exported, _lines(exported)[:-5])
    report = verify(exported, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index) == (2, N - 5)
    assert report.verified_size == 30


async def test_checkpoint_forged_with_another_key_is_a_bad_signature(exported: Path, audit_log: AuditLog) -> None:
    lines = _lines(exported)
    lines[35] = lines[35].replace(b'"cust_35"', b'"cust_00"')
    _write_lines(exported, lines)
    forged = [sign_checkpoint(Ed25519PrivateKey.generate(), "privacy-middleware/audit", N, b"\x00" * 32, _time()).note]
    (exported / "checkpoints.jsonl").write_bytes(b"".join(orjson.dumps({"note": n}) + b"\n" for n in forged))
    assert verify(exported, audit_log.public_key_pem()).status == 3


async def test_checkpoint_with_an_edited_root_is_a_bad_signature(exported: Path, audit_log: AuditLog) -> None:
    records = [orjson.loads(x) for x in (exported / "checkpoints.jsonl").read_bytes().splitlines()]
    body = records[1]["note"].split("\n")
    body[2] = base64.b64encode(b"\x01" * 32).decode()
    records[1]["note"] = "\n".join(body)
    (exported / "checkpoints.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    report = verify(exported, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index, report.verified_size) == (3, 10, 10)


async def test_whole_log_rewritten_and_resigned_by_an_attacker_fails_against_the_trusted_key(
    database: Database, tmp_path: Path, side_key: bytes, audit_log: AuditLog
) -> None:
    attacker = AuditLog(tmp_path / "attacker.pem", side_key, checkpoint_every=10)
    out = await _exported(database, attacker, tmp_path / "fake")
    assert verify(out, attacker.public_key_pem()).status == 0
    assert verify(out, audit_log.public_key_pem()).status == 3


async def test_two_signed_checkpoints_for_one_size_that_disagree_are_equivocation(
    exported: Path, audit_log: AuditLog, key_path: Path
) -> None:
    key = load_or_create_signing_key(key_path)
    records = (exported / "checkpoints.jsonl").read_bytes().splitlines()
    other = sign_checkpoint(key, "privacy-middleware/audit", 20, b"\x02" * 32, _time()).note
    records.insert(2, orjson.dumps({"note": other}))
    (exported / "checkpoints.jsonl").write_bytes(b"\n".join(records) + b"\n")
    assert verify(exported, audit_log.public_key_pem()).status == 1


async def test_purged_stub_without_a_marker_is_an_unexplained_gap(exported: Path, audit_log: AuditLog) -> None:
    lines = _lines(exported)
    digest = leaf_hash(lines[8]).hex()
    lines[8] = orjson.dumps({"purged": {"leaf_hash": digest, "seq": 8}})
    _write_lines(exported, lines)
    report = verify(exported, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index) == (2, 8)


async def test_unsigned_tail_verifies_with_a_warning(database: Database, audit_log: AuditLog, tmp_path: Path) -> None:
    await audit_log.append(database, [audit_log.seal(consent_change(subject="c1", purposes_granted=["analytics"]))])
    await audit_log.checkpoint(database, force=True)
    await audit_log.append(database, [audit_log.seal(consent_change(subject="c2", purposes_denied=["marketing"]))])
    await export(database, tmp_path / "x")
    report = verify(tmp_path / "x", audit_log.public_key_pem())
    assert (report.status, report.unverified_tail, report.batches_verified) == (0, 0, 2)  # every batch is sealed
    (tmp_path / "x" / "batches.jsonl").unlink()  # an export from before batch seals: checkpoints only
    report = verify(tmp_path / "x", audit_log.public_key_pem())
    assert (report.status, report.unverified_tail) == (0, 1)
    assert report.warnings


async def test_export_refuses_to_overwrite_a_previous_export(
    database: Database, audit_log: AuditLog, tmp_path: Path
) -> None:
    exported = await _exported(database, audit_log, tmp_path / "export", n=3)
    with pytest.raises(FileExistsError):
        await export(database, exported)


async def test_cli_helper_prints_and_writes_the_report_and_returns_the_exit_code(
    exported: Path, audit_log: AuditLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = tmp_path / "trusted.pem"
    pem.write_bytes(audit_log.public_key_pem())
    assert verify_main([str(exported), "--public-key", str(pem), "--report", str(tmp_path / "r.json")]) == 0
    assert orjson.loads((tmp_path / "r.json").read_bytes())["result"] == "intact"
    assert orjson.loads(capsys.readouterr().out)["status"] == 0
    _write_lines(exported, _lines(exported)[:-1])
    assert verify_main([str(exported), "--public-key", str(pem)]) == 2
    capsys.readouterr()


async def test_malformed_inputs_exit_4(exported: Path, audit_log: AuditLog, tmp_path: Path) -> None:
    pem = audit_log.public_key_pem()
    assert verify(exported, b"not a key").status == 4
    assert verify_main([str(exported), "--public-key", str(tmp_path / "missing.pem")]) == 4
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "checkpoints.jsonl").write_bytes(b"{oops\n")
    assert verify(broken, pem).status == 4
    (broken / "checkpoints.jsonl").unlink()
    report = verify(broken, pem)
    assert report.status == 4 and "checkpoints.jsonl" in report.reason
    other_key = public_key_pem(Ed25519PrivateKey.generate().public_key())
    assert verify(exported, other_key).status == 3


def _time():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_a_purge_marker_in_the_unsigned_tail_cannot_excuse_a_signed_leaf(
    exported: Path, audit_log: AuditLog
) -> None:
    lines = _lines(exported)
    lines[3] = orjson.dumps({"purged": {"leaf_hash": leaf_hash(lines[3]).hex(), "seq": 3}})
    forged = orjson.dumps(
        {"chain": "default", "kind": "log.retention_purge", "seq": N, "detail": {"ranges": [[3, 4]]}},
        option=orjson.OPT_SORT_KEYS,
    )
    _write_lines(exported, [*lines, forged])
    report = verify(exported, audit_log.public_key_pem())
    assert (report.status, report.first_bad_index) == (2, 3)


async def test_export_helper_for_the_cli_prints_a_summary(
    database: Database, audit_log: AuditLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from privacy_middleware.audit import export_main

    await audit_log.append(database, [audit_log.seal(consent_change(subject="c1", purposes_granted=["analytics"]))])
    await audit_log.checkpoint(database, force=True)
    assert await export_main(database, [str(tmp_path / "cli")]) == 0
    assert orjson.loads(capsys.readouterr().out) == {
        "directory": str(tmp_path / "cli"),
        "events": 1,
        "purged": 0,
        "checkpoints": 1,
    }
    assert await export_main(database, [str(tmp_path / "cli")]) == 1
    assert "already holds an audit export" in capsys.readouterr().err


async def test_any_deletion_duplication_or_swap_of_lines_is_detected(exported: Path, audit_log: AuditLog) -> None:
    original = _lines(exported)
    pem = audit_log.public_key_pem()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.sampled_from(["delete", "duplicate", "swap"]),
        st.integers(min_value=0, max_value=N - 1),
        st.integers(min_value=0, max_value=N - 1),
    )
    def mutate(operation: str, i: int, j: int) -> None:
        lines = list(original)
        if operation == "delete":
            del lines[i]
        elif operation == "duplicate":
            lines.insert(j, lines[i])
        else:
            if lines[i] == lines[j]:
                return
            lines[i], lines[j] = lines[j], lines[i]
        _write_lines(exported, lines)
        assert verify(exported, pem).status in (1, 2)

    mutate()


@pytest.mark.parametrize("final_newline", [True, False])
@pytest.mark.parametrize("special", [(0,), (999,), (0, 999), (0, 1, 500, 998, 999), (3, 997), (400, 401, 620)])
def test_the_fast_pass_finds_the_lines_of_lifecycle_leaves_and_purge_stubs_anywhere(
    special: tuple[int, ...], final_newline: bool
) -> None:
    """Line numbers of the hits are counted from the previous hit or back from the end of the file:
    both ways name the same lines as looking at every line."""
    lines = []
    for i in range(1000):
        if i in special and i % 2:
            lines.append(orjson.dumps({"purged": {"leaf_hash": "00" * 32, "seq": i}}))
        elif i in special:
            lines.append(orjson.dumps({"chain": "default", "kind": "log.heartbeat", "seq": i}))
        else:
            lines.append(orjson.dumps({"chain": "default", "kind": "authentication.logon", "seq": i}))
    raw = b"\n".join(lines) + (b"\n" if final_newline else b"")
    assert _special_lines(raw, raw.split(b"\n")[:1000]) == list(special)
