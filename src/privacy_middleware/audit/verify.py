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

from .batches import BatchSeal, ReadSeal, SealFormatError, SealVerifier, read_seal
from .checkpoint import Checkpoint, CheckpointFormatError, load_public_key, parse_checkpoint, verify_checkpoint
from .export import ANCHOR_FILE, BATCHES_FILE, CHECKPOINTS_FILE, EVENTS_FILE
from .merkle import Frontier, batch_root

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
    batches_verified: int = 0
    verified_size: int = 0
    dropped: int = 0  # leaves before the export's anchor: whole partitions dropped by retention
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


def _load_field(path: Path, field: str, error: type[Exception]) -> list[str]:
    """The `field` string of every JSON line of an export file; `error` names a bad line."""
    values = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise error(f"{path.name} line {number} is not JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise error(f"{path.name} line {number} has no {field}")
        values.append(record[field])
    return values


def _load_checkpoints(path: Path) -> list[str]:
    return _load_field(path, "note", CheckpointFormatError)


def _load_seals(path: Path) -> list[str]:
    """The batch seal tokens of an export (none for an export written before batches were sealed)."""
    return _load_field(path, "seal", SealFormatError) if path.is_file() else []


@dataclass(frozen=True, slots=True)
class _Anchor:
    """Where an export starts after retention dropped partitions: the tree's frontier at `size`."""

    size: int = 0
    nodes: tuple[bytes, ...] = ()


def _load_anchor(path: Path) -> _Anchor:
    if not path.is_file():
        return _Anchor()
    try:
        data = orjson.loads(path.read_bytes())
        size, nodes = data["size"], tuple(bytes.fromhex(n) for n in data["frontier"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise CheckpointFormatError(f"{path.name} is not an anchor") from None
    if type(size) is not int or size < 0 or len(nodes) != bin(size).count("1") or any(len(n) != 32 for n in nodes):
        raise CheckpointFormatError(f"{path.name} does not hold the frontier of its size")
    return _Anchor(size, nodes)


def _read_lines(path: Path) -> tuple[bytes, list[bytes]]:
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return raw, lines


# A purge stub as the exporter writes it, `{"purged":{"leaf_hash":..,"seq":..}}`: the longer needle
# is found in about half the time of `{"purged"` (whose last byte, a quote, is everywhere in JSON). A
# stub spelt otherwise is missed here, its line hash then fails the signed roots and the thorough
# pass reads it (slower, same result).
_SPECIAL = (b'"kind":"log.', b'{"purged":{"leaf_hash":"')


def _special_lines(raw: bytes, lines: list[bytes]) -> list[int]:
    """Indices of the lines that may be log.* leaves or purge stubs: one scan of the whole file."""
    offsets: list[int] = []
    for needle in _SPECIAL:  # bytes.find is a fast substring search; a regex alternation is not
        offset = raw.find(needle)
        while offset >= 0:
            offsets.append(offset)
            offset = raw.find(needle, offset + 1)
    # the newlines in the file: one per line split off, the last line's too when the file ends in one
    newlines = len(lines) if raw.endswith(b"\n") else len(lines) - 1
    found: set[int] = set()
    line, counted = 0, 0
    for offset in sorted(offsets):
        # A hit's line number is the newlines before it, counted in C from the last hit forwards or
        # from the end backwards, whichever is shorter: the start and stop leaves are at both ends.
        if offset - counted <= len(raw) - offset:
            line += raw.count(b"\n", counted, offset)
        else:
            line = newlines - raw.count(b"\n", offset)
        counted = offset
        found.add(line)
    return sorted(i for i in found if i < len(lines))


_LEAF_PREFIX = _sha256(b"\x00")


def _leaf_digests(lines: list[bytes]) -> list[bytes]:
    """RFC 6962 leaf hashes: a copy of the hash state after the 0x00 prefix, fed each line as it
    is (no concatenated copy of every line: about an eighth less time on an export)."""
    digests: list[bytes] = []
    append = digests.append
    start = _LEAF_PREFIX.copy
    for line in lines:
        state = start()
        state.update(line)
        append(state.digest())
    return digests


def verify(directory: str | Path, public_key_pem: bytes | str) -> VerifyReport:
    """Check an export against a trusted public key; the report names the first bad index.

    Fast path first: hash every line, and check every signed head (batch seals and checkpoints)
    against the recomputed tree; only log.* leaves and purge stubs are parsed. When every leaf is
    covered and everything holds, the export is intact (the signed roots fix each leaf's bytes and
    place). Anything else is analysed leaf by leaf (indices, chain, gaps) for a precise report."""
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
        tokens = _load_seals(root_dir / BATCHES_FILE)
        anchor = _load_anchor(root_dir / ANCHOR_FILE)
    except (CheckpointFormatError, SealFormatError) as exc:
        return VerifyReport(MALFORMED, str(exc))
    if not notes and not tokens:
        return VerifyReport(MALFORMED, "the export holds no checkpoint")
    raw, lines = _read_lines(events_path)
    fast = _fast(raw, lines, notes, tokens, trusted, anchor)
    if fast is not None:
        return fast
    return _thorough(lines, notes, tokens, trusted, anchor)


def _fast(
    raw: bytes,
    lines: list[bytes],
    notes: list[str],
    tokens: list[str],
    trusted: list[Ed25519PublicKey],
    anchor: _Anchor,
) -> VerifyReport | None:
    """The intact report when every leaf is covered by a verified signed head, else None."""
    base = anchor.size
    digests = _leaf_digests(lines)
    entries: dict[int, _Entry] = {}
    for position in _special_lines(raw, lines):
        entry = _parse_entry(lines[position])
        if entry.seq != base + position:
            return None
        if entry.purged or entry.lifecycle is not None:
            entries[base + position] = entry
            digests[position] = entry.digest
    report = VerifyReport(INTACT, "all checkpoints and batch seals verified", events=len(lines), dropped=base)
    report.purged = sum(1 for e in entries.values() if e.purged)
    failure, _ = _check_heads(report, digests, entries, base + len(lines), notes, tokens, trusted, anchor)
    if failure is not None or report.verified_size != base + len(lines):
        return None
    markers = _purge_ranges(sorted(entries.items()))
    if any(entry.purged and not _is_covered(position, markers) for position, entry in entries.items()):
        return None
    if base and not _drop_explained(base, entries):
        return None
    return report


def _drop_explained(base: int, kept: dict[int, _Entry]) -> bool:
    """A signed log.retention_drop leaf names `base` as the anchor the log now starts from."""
    for entry in kept.values():
        doc = entry.lifecycle
        if doc is not None and doc.get("kind") == "log.retention_drop":
            detail = doc.get("detail")
            if isinstance(detail, dict) and detail.get("anchor") == base:
                return True
    return False


def _thorough(
    lines: list[bytes], notes: list[str], tokens: list[str], trusted: list[Ed25519PublicKey], anchor: _Anchor
) -> VerifyReport:
    # Parsing allocates one small record per leaf and frees nothing: pausing the cyclic collector
    # meanwhile (restored right after) saves it from rescanning a growing heap again and again.
    paused = gc.isenabled()
    gc.disable()
    try:
        entries = [_parse_entry(line) for line in lines]
    finally:
        if paused:
            gc.enable()
    base = anchor.size
    report = VerifyReport(INTACT, "all checkpoints and batch seals verified", events=len(entries), dropped=base)
    report.purged = sum(1 for e in entries if e.purged)

    # 1. order: indices must run base, base + 1, ... with nothing missing or repeated.
    expected = base
    gap_at: int | None = None
    order_at: int | None = None
    unreadable: list[int] = []
    chain = None
    for position, entry in enumerate(entries, start=base):
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
    end = base + len(entries)
    prefix = end
    for cut in (gap_at, order_at):
        if cut is not None:
            prefix = min(prefix, cut)

    # 2. signed heads in size order: signature, then root over the recomputed tree.
    digests = [entry.digest for entry in entries]
    kept = {i: e for i, e in enumerate(entries, start=base) if e.lifecycle is not None or e.purged}
    failure, largest = _check_heads(report, digests, kept, prefix, notes, tokens, trusted, anchor, unreadable)
    if failure is not None:
        return failure

    # 3. a purged body must be explained by a later retention.purge leaf; inside the signed part
    #    only a signed marker counts (an unsigned tail cannot excuse a signed leaf).
    signed = report.verified_size
    signed_markers = _purge_ranges([(i, e) for i, e in kept.items() if i < signed])
    all_markers = _purge_ranges([(i, e) for i, e in kept.items() if i < prefix])
    for position in range(base, prefix):
        if entries[position - base].purged:
            markers = signed_markers if position < signed else all_markers
            if not _is_covered(position, markers):
                return _fail(report, GAP, f"index {position} was purged without a purge marker", position)

    # 4. anything the signed heads did not reach is explained here.
    if base and not _drop_explained(base, {i: e for i, e in kept.items() if i < report.verified_size}):
        return _fail(report, GAP, f"indices 0..{base - 1} were dropped without a signed retention marker", 0, base)
    if order_at is not None:
        return _fail(report, CONTENT_ALTERED, f"index {order_at} is out of order or repeated", order_at)
    if gap_at is not None:
        return _fail(report, GAP, f"index {gap_at} is missing", gap_at)
    if largest > end:
        return _fail(report, GAP, f"a signed head covers {largest} leaves but the export ends at {end}", end)
    unreadable_tail = [i for i in unreadable if i >= report.verified_size]
    if unreadable_tail:
        return _fail(report, CONTENT_ALTERED, f"index {unreadable_tail[0]} is not a leaf", unreadable_tail[0])
    report.unverified_tail = end - report.verified_size
    if report.unverified_tail:
        report.warnings.append(f"{report.unverified_tail} leaves after the last signed head are not yet signed")
    return report


@dataclass(slots=True)
class _SignedHead:
    size: int
    root: bytes
    checkpoint: Checkpoint | None = None
    seal: BatchSeal | None = None
    read: ReadSeal | None = None


def _check_heads(
    report: VerifyReport,
    digests: list[bytes],
    kept: dict[int, _Entry],
    prefix: int,
    notes: list[str],
    tokens: list[str],
    trusted_keys: list[Ed25519PublicKey],
    anchor: _Anchor,
    unreadable: Sequence[int] = (),
) -> tuple[VerifyReport | None, int]:
    """Walk checkpoints and batch seals by tree size, recomputing the tree once: (failure or None,
    the largest signed size).

    A checkpoint or seal needs a trusted signature (keys announced in leaves a verified head covers
    become trusted); a seal's batch root must match its leaves and the seals must follow each other."""
    trusted = list(trusted_keys)
    seals = SealVerifier(trusted)
    largest = 0
    heads: list[_SignedHead] = []
    origin: str | None = None
    last_size = -1
    for note in notes:
        try:
            checkpoint, _ = parse_checkpoint(note)
        except CheckpointFormatError as exc:
            return _failed(largest, report, MALFORMED, f"checkpoint is malformed: {exc}", None)
        if checkpoint.size < last_size:
            return _failed(largest, report, MALFORMED, "checkpoints are not in tree-size order", None)
        last_size = checkpoint.size
        heads.append(_SignedHead(checkpoint.size, checkpoint.root, checkpoint=checkpoint))
    previous_end: int | None = None
    for token in tokens:
        try:
            read = read_seal(token)
        except SealFormatError as exc:
            return _failed(largest, report, MALFORMED, f"batch seal is malformed: {exc}", None)
        seal = read.seal
        if seal.first < anchor.size:
            continue  # a batch whose leaves retention dropped (its tree head is still checked by the anchor)
        if previous_end is not None and seal.first != previous_end:
            where = min(seal.first, previous_end)
            return _failed(largest, report, GAP, f"batch seals skip or repeat indices from {where}", where)
        previous_end = seal.end
        heads.append(_SignedHead(seal.size, seal.root, seal=seal, read=read))
    heads.sort(key=lambda h: (h.size, h.seal is not None))  # stable: checkpoints first at equal sizes
    largest = max((h.size for h in heads), default=0)
    announced = sorted((p, k) for p, e in kept.items() if (k := _announced_key(e)) is not None)
    base = anchor.size
    frontier = Frontier(base, anchor.nodes)
    roots: dict[int, bytes] = {base: frontier.root()} if base else {}
    report.verified_size = base
    for head in heads:
        what = "checkpoint" if head.checkpoint is not None else "batch seal"
        if head.checkpoint is not None:
            if verify_checkpoint(head.checkpoint.note, trusted) is None:
                return _failed(
                    largest, report, BAD_SIGNATURE, "a checkpoint is not signed by a trusted key", report.verified_size
                )
            head_origin = head.checkpoint.origin
        else:
            assert head.seal is not None and head.read is not None
            if not seals.check(head.read):
                return _failed(
                    largest, report, BAD_SIGNATURE, "a batch seal is not signed by a trusted key", report.verified_size
                )
            head_origin = head.seal.origin
        if origin is None:
            origin = head_origin
        elif head_origin != origin:
            return _failed(largest, report, BAD_SIGNATURE, "signed heads name different logs", report.verified_size)
        if head.size > prefix:
            continue  # signature checked; the missing leaves are reported by the caller
        start = frontier.size
        if head.size < start:
            # a second head for a size already passed: must repeat the same root
            if roots.get(head.size, head.root) != head.root:
                return _failed(
                    largest, report, CONTENT_ALTERED, f"two signed heads for size {head.size} disagree", None
                )
            continue
        if head.size > start:
            frontier.extend(digests[start - base : head.size - base])
        roots[head.size] = frontier.root()
        if roots[head.size] != head.root:
            bad = [i for i in unreadable if start <= i < head.size]
            return _failed(
                largest,
                report,
                CONTENT_ALTERED,
                f"leaves {start}..{head.size - 1} mismatch the {what} of size {head.size}",
                bad[0] if bad else start,
                head.size,
            )
        if head.seal is not None:
            seal = head.seal
            if batch_root(digests[seal.first - base : seal.end - base]) != seal.batch_root:
                return _failed(
                    largest,
                    report,
                    CONTENT_ALTERED,
                    f"leaves {seal.first}..{seal.end - 1} mismatch the root of their batch",
                    seal.first,
                    seal.end,
                )
            report.batches_verified += 1
        else:
            report.checkpoints_verified += 1
        # keys announced in leaves this verified head covers become trusted too
        while announced and announced[0][0] < head.size:
            key = announced.pop(0)[1]
            trusted.append(key)
            seals.trust(key)
        report.verified_size = head.size
    return None, largest


def _failed(largest: int, *args: Any) -> tuple[VerifyReport, int]:
    return _fail(*args), largest


def _fail(
    report: VerifyReport, status: int, reason: str, index: int | None, range_end: int | None = None
) -> VerifyReport:
    report.status = status
    report.reason = reason
    report.first_bad_index = index
    report.bad_range_end = range_end
    return report


def _purge_ranges(entries: Sequence[tuple[int, _Entry]]) -> list[tuple[int, int, int]]:
    """(from, to, marker index) for every retention.purge leaf among (position, entry) pairs."""
    ranges = []
    for position, entry in entries:
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
    anchor = _load_anchor(Path(directory) / ANCHOR_FILE)  # verify() has read it already
    base, end = anchor.size, anchor.size + len(lines)
    witnessed.sort(key=lambda c: c.size)
    largest = witnessed[-1]
    if largest.size > end:
        report.status = WITNESS_MISMATCH
        report.reason = (
            f"a witness holds a checkpoint of {largest.size} leaves but the export ends at {end}: "
            "the tail was truncated"
        )
        report.first_bad_index = end
        return report
    frontier = Frontier(base, anchor.nodes)
    for checkpoint in witnessed:
        if checkpoint.size < base:
            continue  # its leaves were dropped by retention; the anchor is checked by later heads
        for line in lines[frontier.size - base : checkpoint.size - base]:
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
