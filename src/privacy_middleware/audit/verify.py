"""Offline verification of an audit export: no database, no private key, no network.

Exit codes (usable as a CI or cron gate):
  0 intact - every checkpoint is signed by a trusted key and matches the recomputed tree
  1 content altered - a leaf, its order or a checkpoint root does not match
  2 unexplained gap or truncation - an index is missing, or a checkpoint covers more leaves
    than the export holds, or a leaf was purged without a purge marker
  3 bad signature - a checkpoint is not signed by the given key (or a key the log announced)
  4 malformed input - missing files, an unreadable key or checkpoint
  5 witness mismatch - (with --witness) a checkpoint witnessed outside the store covers more
    leaves than the export holds (tail truncated) or another root (rolled back and rewritten)
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .checkpoint import Checkpoint, CheckpointFormatError, load_public_key, verify_checkpoint
from .export import CHECKPOINTS_FILE, EVENTS_FILE
from .merkle import Frontier

_sha256 = hashlib.sha256

INTACT, CONTENT_ALTERED, GAP, BAD_SIGNATURE, MALFORMED, WITNESS_MISMATCH = 0, 1, 2, 3, 4, 5
RESULTS = {
    INTACT: "intact",
    CONTENT_ALTERED: "content_altered",
    GAP: "gap_or_truncation",
    BAD_SIGNATURE: "bad_signature",
    MALFORMED: "malformed_input",
    WITNESS_MISMATCH: "witness_mismatch",
}


@dataclass(slots=True)
class VerifyReport:
    status: int
    reason: str
    first_bad_index: int | None = None
    bad_range_end: int | None = None
    events: int = 0
    checkpoints_verified: int = 0
    verified_size: int = 0
    purged: int = 0
    unverified_tail: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def result(self) -> str:
        return RESULTS[self.status]

    @property
    def ok(self) -> bool:
        return self.status == INTACT

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["result"] = self.result
        return data


@dataclass(slots=True)
class _Entry:
    seq: int | None
    digest: bytes
    chain: Any = None
    lifecycle: dict[str, Any] | None = None  # only log.* leaves keep their document
    purged: bool = False


class _Head(msgspec.Struct):
    """The three fields the checks read from an ordinary leaf; the rest is validated JSON, skipped."""

    seq: Any = None
    chain: Any = None
    kind: Any = None
    purged: Any = None


_decode_head = msgspec.json.Decoder(_Head).decode


def _parse_entry(line: bytes) -> _Entry:
    """Hash the exact line; keep only what the checks need (retaining every document is slow)."""
    digest = _sha256(b"\x00" + line).digest()  # leaf_hash, inlined: once per leaf
    try:
        head = _decode_head(line)
    except msgspec.DecodeError:
        return _Entry(None, digest)  # not a JSON object
    kind = head.kind
    if head.purged is None and not (isinstance(kind, str) and kind.startswith("log.")):
        seq = head.seq
        return _Entry(seq if type(seq) is int else None, digest, head.chain)
    # purge stubs and lifecycle leaves (rare) are read whole
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _Entry(None, digest)
    if not isinstance(doc, dict):
        return _Entry(None, digest)
    stub = doc.get("purged")
    if stub is not None:
        if not isinstance(stub, dict) or len(doc) != 1:
            return _Entry(None, digest)
        try:
            stored = bytes.fromhex(stub["leaf_hash"])
            seq = stub["seq"]
        except (KeyError, TypeError, ValueError):
            return _Entry(None, digest)
        if len(stored) == 32 and type(seq) is int:
            return _Entry(seq, stored, purged=True)
        return _Entry(None, digest)
    seq = doc.get("seq")
    if type(seq) is not int:
        return _Entry(None, digest)
    kind = doc.get("kind")
    keep = doc if isinstance(kind, str) and kind.startswith("log.") else None
    return _Entry(seq, digest, doc.get("chain"), keep)


def _load_checkpoints(path: Path) -> list[str]:
    notes = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise CheckpointFormatError(f"{path.name} line {number} is not JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get("note"), str):
            raise CheckpointFormatError(f"{path.name} line {number} has no note")
        notes.append(record["note"])
    return notes


def verify(directory: str | Path, public_key_pem: bytes | str) -> VerifyReport:
    """Check an export against a trusted public key; the report names the first bad index."""
    root_dir = Path(directory)
    try:
        trusted: list[Ed25519PublicKey] = [load_public_key(public_key_pem)]
    except CheckpointFormatError as exc:
        return VerifyReport(MALFORMED, str(exc))
    events_path, checkpoints_path = root_dir / EVENTS_FILE, root_dir / CHECKPOINTS_FILE
    for needed in (events_path, checkpoints_path):
        if not needed.is_file():
            return VerifyReport(MALFORMED, f"{needed.name} is missing from {root_dir}")
    try:
        notes = _load_checkpoints(checkpoints_path)
    except CheckpointFormatError as exc:
        return VerifyReport(MALFORMED, str(exc))
    if not notes:
        return VerifyReport(MALFORMED, "the export holds no checkpoint")

    lines = events_path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    # Parsing allocates one small record per leaf and frees nothing: pausing the cyclic collector
    # meanwhile (restored right after) saves it from rescanning a growing heap again and again.
    paused = gc.isenabled()
    gc.disable()
    try:
        entries = [_parse_entry(line) for line in lines]
    finally:
        if paused:
            gc.enable()
    report = VerifyReport(INTACT, "all checkpoints verified", events=len(entries))
    report.purged = sum(1 for e in entries if e.purged)

    # 1. order: indices must run 0, 1, 2, ... with nothing missing or repeated.
    expected = 0
    gap_at: int | None = None
    order_at: int | None = None
    unreadable: list[int] = []
    chain = None
    for position, entry in enumerate(entries):
        seq = entry.seq
        if seq is None:
            unreadable.append(position)
            seq = expected
            entry.seq = seq
        elif not entry.purged:
            if chain is None:
                chain = entry.chain
            elif entry.chain != chain and order_at is None:
                order_at = position
        if seq == expected:
            expected += 1
        elif seq > expected:
            if gap_at is None:
                gap_at = expected
            expected = seq + 1
        elif order_at is None:
            order_at = min(seq, gap_at if gap_at is not None else seq)
    prefix = len(entries)
    for cut in (gap_at, order_at):
        if cut is not None:
            prefix = min(prefix, cut)

    # 2. checkpoints in size order: signature, then root over the recomputed tree.
    frontier = Frontier()
    parsed: list[Checkpoint] = []
    for note in notes:
        try:
            checkpoint = verify_checkpoint(note, trusted)
        except CheckpointFormatError as exc:
            return _fail(report, MALFORMED, f"checkpoint is malformed: {exc}", None)
        if checkpoint is None:
            # the first index no trusted checkpoint vouches for any more
            return _fail(
                report,
                BAD_SIGNATURE,
                "a checkpoint is not signed by a trusted key",
                report.verified_size,
            )
        parsed.append(checkpoint)
        if checkpoint.origin != parsed[0].origin:
            return _fail(report, BAD_SIGNATURE, "checkpoints name different logs", report.verified_size)
        if len(parsed) > 1 and checkpoint.size < parsed[-2].size:
            return _fail(report, MALFORMED, "checkpoints are not in tree-size order", None)
        if checkpoint.size > prefix:
            continue  # signature checked; the missing leaves are reported below
        start = frontier.size
        if checkpoint.size < start:
            # a second checkpoint for a size already passed: must repeat the same root
            if any(c.size == checkpoint.size and c.root != checkpoint.root for c in parsed[:-1]):
                return _fail(report, CONTENT_ALTERED, f"two checkpoints for size {checkpoint.size} disagree", None)
            continue
        frontier.extend([entry.digest for entry in entries[start : checkpoint.size]])
        if frontier.root() != checkpoint.root:
            bad = [i for i in unreadable if start <= i < checkpoint.size]
            first = bad[0] if bad else start
            return _fail(
                report,
                CONTENT_ALTERED,
                f"leaves {start}..{checkpoint.size - 1} mismatch the checkpoint of size {checkpoint.size}",
                first,
                checkpoint.size,
            )
        # keys announced in leaves this verified checkpoint covers become trusted too
        for entry in entries[start : checkpoint.size]:
            key = _announced_key(entry)
            if key is not None:
                trusted.append(key)
        report.checkpoints_verified += 1
        report.verified_size = checkpoint.size

    # 3. a purged body must be explained by a later retention.purge leaf; inside the signed part
    #    only a signed marker counts (an unsigned tail cannot excuse a signed leaf).
    signed = report.verified_size
    signed_markers = _purge_ranges(entries[:signed])
    all_markers = _purge_ranges(entries[:prefix])
    for position in range(prefix):
        if entries[position].purged:
            markers = signed_markers if position < signed else all_markers
            if not _is_covered(position, markers):
                return _fail(report, GAP, f"index {position} was purged without a purge marker", position)

    # 4. anything the checkpoints did not reach is explained here.
    if order_at is not None:
        return _fail(report, CONTENT_ALTERED, f"index {order_at} is out of order or repeated", order_at)
    if gap_at is not None:
        return _fail(report, GAP, f"index {gap_at} is missing", gap_at)
    largest = max(c.size for c in parsed)
    if largest > len(entries):
        return _fail(
            report,
            GAP,
            f"a checkpoint covers {largest} leaves but the export holds {len(entries)}",
            len(entries),
        )
    unreadable_tail = [i for i in unreadable if i >= report.verified_size]
    if unreadable_tail:
        return _fail(report, CONTENT_ALTERED, f"index {unreadable_tail[0]} is not a leaf", unreadable_tail[0])
    report.unverified_tail = len(entries) - report.verified_size
    if report.unverified_tail:
        report.warnings.append(f"{report.unverified_tail} leaves after the last checkpoint are not yet signed")
    return report


def _fail(
    report: VerifyReport, status: int, reason: str, index: int | None, range_end: int | None = None
) -> VerifyReport:
    report.status = status
    report.reason = reason
    report.first_bad_index = index
    report.bad_range_end = range_end
    return report


def _purge_ranges(entries: Sequence[_Entry]) -> list[tuple[int, int, int]]:
    """(from, to, marker index) for every retention.purge leaf."""
    ranges = []
    for position, entry in enumerate(entries):
        doc = entry.lifecycle
        if doc is None or doc.get("kind") != "log.retention_purge":
            continue
        detail = doc.get("detail")
        raw = detail.get("ranges") if isinstance(detail, dict) else None
        if not isinstance(raw, list):
            continue
        for item in raw:
            if isinstance(item, list) and len(item) == 2 and all(isinstance(v, int) for v in item):
                ranges.append((item[0], item[1], position))
    return ranges


def _is_covered(position: int, ranges: Sequence[tuple[int, int, int]]) -> bool:
    return any(low <= position < high and position < marker for low, high, marker in ranges)


def _announced_key(entry: _Entry) -> Ed25519PublicKey | None:
    doc = entry.lifecycle
    if doc is None or doc.get("kind") != "log.key_rotation":
        return None
    detail = doc.get("detail")
    pem = detail.get("new_public_key") if isinstance(detail, dict) else None
    if not isinstance(pem, str):
        return None
    try:
        return load_public_key(pem)
    except CheckpointFormatError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """`verify DIR --public-key PEM [--report FILE]`: print the JSON report, return the exit code."""
    parser = argparse.ArgumentParser(prog="privacy-middleware audit verify", description=__doc__)
    parser.add_argument("directory", type=Path, help="an audit export directory")
    parser.add_argument("--public-key", type=Path, required=True, help="trusted Ed25519 public key (PEM)")
    parser.add_argument("--report", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--witness", help="witnessed checkpoints: a witness URL or a JSON-lines file of notes")
    args = parser.parse_args(argv)
    try:
        pem = args.public_key.read_bytes()
    except OSError:
        report = VerifyReport(MALFORMED, f"cannot read the public key {args.public_key}")
    else:
        report = _verify(args.directory, pem, args.witness)
    body = orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2)
    if args.report is not None:
        args.report.write_bytes(body + b"\n")
    sys.stdout.write(body.decode() + "\n")
    return report.status


def _verify(directory: Path, pem: bytes, witness: str | None) -> VerifyReport:
    if witness is None:
        return verify(directory, pem)
    try:
        notes = load_witnessed(witness)
    except (OSError, ValueError, CheckpointFormatError) as exc:
        return VerifyReport(MALFORMED, f"cannot read the witnessed checkpoints ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return VerifyReport(MALFORMED, f"cannot reach the witness ({type(exc).__name__})")
    return verify_with_witness(directory, pem, notes)


# -- checkpoints witnessed outside the store ------------------------------------------------------
# A log whose tail was cut off together with its last checkpoints, or rewound and rewritten and
# signed again by a thief of the signing key, still verifies on its own. A witnessed checkpoint of
# size N says the log once had N leaves with a given root: an export with fewer leaves was
# truncated; one whose first N leaves hash to another root was rolled back (or shows a split view).


def load_witnessed(source: str, *, timeout: float = 10.0) -> list[str]:
    """Notes from a witness URL (`{"checkpoints": [{"note": ...}]}`) or a JSON-lines file of `{"note": ...}`."""
    if source.startswith(("http://", "https://")):
        response = httpx.get(source, timeout=timeout, follow_redirects=False)
        response.raise_for_status()
        records = response.json().get("checkpoints", [])
    else:
        records = [orjson.loads(line) for line in Path(source).read_bytes().splitlines() if line.strip()]
    notes = []
    for record in records:
        note = record.get("note") if isinstance(record, dict) else None
        if not isinstance(note, str):
            raise CheckpointFormatError("a witnessed record has no note")
        notes.append(note)
    return notes


def verify_with_witness(directory: str | Path, public_key_pem: bytes | str, notes: Sequence[str]) -> VerifyReport:
    """`verify`, then every witnessed checkpoint signed by the log's key must match the export."""
    report = verify(directory, public_key_pem)
    if not report.ok:
        return report
    key = load_public_key(public_key_pem)
    witnessed: list[Checkpoint] = []
    for note in notes:
        try:
            checkpoint = verify_checkpoint(note, [key])
        except CheckpointFormatError as exc:
            report.status, report.reason = MALFORMED, f"a witnessed checkpoint is malformed: {exc}"
            return report
        if checkpoint is None:
            report.warnings.append("a witnessed checkpoint is not signed by this log's key; ignored")
            continue
        witnessed.append(checkpoint)
    if not witnessed:
        report.status, report.reason = MALFORMED, "no witnessed checkpoint signed by this log's key"
        return report
    lines = (Path(directory) / EVENTS_FILE).read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    witnessed.sort(key=lambda c: c.size)
    largest = witnessed[-1]
    if largest.size > len(lines):
        report.status = WITNESS_MISMATCH
        report.reason = (
            f"a witness holds a checkpoint of {largest.size} leaves but the export has {len(lines)}: "
            "the tail was truncated"
        )
        report.first_bad_index = len(lines)
        return report
    frontier = Frontier()
    for checkpoint in witnessed:
        for line in lines[frontier.size : checkpoint.size]:
            frontier.append(_parse_entry(line).digest)
        if frontier.root() != checkpoint.root:
            report.status = WITNESS_MISMATCH
            report.reason = (
                f"the first {checkpoint.size} leaves do not match the witnessed checkpoint of that size: "
                "the log was rolled back and rewritten"
            )
            report.bad_range_end = checkpoint.size
            return report
    report.reason = f"all checkpoints verified; {len(witnessed)} witnessed checkpoint(s) match"
    return report
