"""Export a chain for offline verification: leaves, checkpoints and the public key.

`events.jsonl` holds the canonical leaf bytes, one per line, exactly as they were hashed; a
purged event appears as `{"purged":{"leaf_hash":..,"seq":..}}` so the tree still recomputes.
`batches.jsonl` holds the signed seal of every batch, `checkpoints.jsonl` the signed checkpoints.
When retention dropped the oldest partitions, the log starts later: `anchor.json` holds the tree's
frontier at the first index kept, and only the seals and checkpoints from there on are written.
No side record (raw IP, username) is ever exported.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import sqlalchemy as sa

from ..store import Database
from ..store.audit import audit_batches, audit_checkpoints, audit_events, audit_signing_keys
from ..store.audit_partitions import audit_anchors

EXPORT_FORMAT = "privacy-middleware-audit-export/1"
EVENTS_FILE = "events.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
BATCHES_FILE = "batches.jsonl"
ANCHOR_FILE = "anchor.json"
PUBLIC_KEY_FILE = "public_key.pem"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    directory: Path
    events: int
    purged: int
    checkpoints: int


async def export(database: Database, out_dir: str | os.PathLike[str], *, chain: str = "default") -> ExportSummary:
    """Write the chain to `out_dir` (created; must not already hold an export)."""
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    if (target / EVENTS_FILE).exists():
        raise FileExistsError(f"{target} already holds an audit export")
    count = purged = 0
    async with database.connect() as conn:
        first = await conn.scalar(sa.select(sa.func.min(audit_events.c.seq)).where(audit_events.c.chain == chain)) or 0
        if first:
            nodes = await conn.scalar(
                sa.select(audit_anchors.c.frontier).where(
                    audit_anchors.c.chain == chain, audit_anchors.c.tree_size == first
                )
            )
            if nodes is not None:
                frontier = [bytes(nodes)[i : i + 32].hex() for i in range(0, len(nodes), 32)]
                (target / ANCHOR_FILE).write_bytes(orjson.dumps({"size": first, "frontier": frontier}))
        with open(target / EVENTS_FILE, "wb") as handle:
            last = first - 1
            while True:
                rows = (
                    await conn.execute(
                        sa.select(audit_events.c.seq, audit_events.c.leaf, audit_events.c.leaf_hash)
                        .where(audit_events.c.chain == chain, audit_events.c.seq > last)
                        .order_by(audit_events.c.seq)
                        .limit(5000)
                    )
                ).all()
                if not rows:
                    break
                lines = []
                for seq, leaf, digest in rows:
                    if leaf is None:
                        purged += 1
                        lines.append(orjson.dumps({"purged": {"leaf_hash": bytes(digest).hex(), "seq": seq}}))
                    else:
                        lines.append(bytes(leaf))
                handle.write(b"\n".join(lines) + b"\n")
                count += len(rows)
                last = rows[-1].seq
        checkpoints = (
            await conn.execute(
                sa.select(audit_checkpoints.c.note, audit_checkpoints.c.key_id)
                .where(audit_checkpoints.c.chain == chain, audit_checkpoints.c.tree_size >= first)
                .order_by(audit_checkpoints.c.tree_size)
            )
        ).all()
        with open(target / CHECKPOINTS_FILE, "wb") as handle:
            for note, _ in checkpoints:
                handle.write(orjson.dumps({"note": note}) + b"\n")
        seals = await conn.execute(
            sa.select(audit_batches.c.seal)
            .where(audit_batches.c.chain == chain, audit_batches.c.first_seq >= first)
            .order_by(audit_batches.c.first_seq)
        )
        batches = 0
        with open(target / BATCHES_FILE, "wb") as handle:
            for (token,) in seals:
                handle.write(orjson.dumps({"seal": token}) + b"\n")
                batches += 1
        first_key = checkpoints[0].key_id if checkpoints else None
        pem = None
        if first_key is not None:
            pem = (
                await conn.execute(
                    sa.select(audit_signing_keys.c.public_pem).where(audit_signing_keys.c.key_id == first_key)
                )
            ).scalar_one()
    if pem is not None:
        (target / PUBLIC_KEY_FILE).write_text(pem)
    manifest = {
        "format": EXPORT_FORMAT,
        "chain": chain,
        "events": count,
        "purged": purged,
        "checkpoints": len(checkpoints),
        "batches": batches,
        "exported_at": datetime.now(UTC).isoformat(),
    }
    (target / MANIFEST_FILE).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return ExportSummary(directory=target, events=count, purged=purged, checkpoints=len(checkpoints))


async def export_main(database: Database, argv: Sequence[str] | None = None) -> int:
    """`export OUT_DIR [--chain NAME]` for the CLI: JSON summary on stdout; 1 if OUT_DIR is taken."""
    parser = argparse.ArgumentParser(prog="privacy-middleware audit export")
    parser.add_argument("out_dir", type=Path, help="a new directory for the export")
    parser.add_argument("--chain", default="default")
    args = parser.parse_args(argv)
    try:
        summary = await export(database, args.out_dir, chain=args.chain)
    except FileExistsError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    body = {
        "directory": str(summary.directory),
        "events": summary.events,
        "purged": summary.purged,
        "checkpoints": summary.checkpoints,
    }
    sys.stdout.write(orjson.dumps(body).decode() + "\n")
    return 0
