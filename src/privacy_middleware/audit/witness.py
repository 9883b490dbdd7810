"""An export held against checkpoints witnessed outside the store (`audit verify --witness`).

A log whose tail was cut off together with its last checkpoints, or rewound and rewritten and
signed again by a thief of the signing key, still verifies on its own. A witnessed checkpoint of
size N says the log once had N leaves with a given root: an export with fewer leaves was
truncated; one whose first N leaves hash to another root was rolled back (or shows a split view).
Either is exit code 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson

from .checkpoint import Checkpoint, CheckpointFormatError, load_public_key, verify_checkpoint
from .export import EVENTS_FILE
from .merkle import Frontier
from .verify import MALFORMED, WITNESS_MISMATCH, VerifyReport, _parse_entry, verify


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
