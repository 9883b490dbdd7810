"""`audit search`, `audit public-key`, `audit ocsf`, `audit prove` and `audit verify-proof`: query the
trail, hand its verification key to an auditor, prove one event from its sealed batch."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from .base import ExitCode, OperatorError, Output, group, open_store, parse_time, settings


def cmd_audit_search(args: argparse.Namespace) -> int:
    from ..audit.query import MAX_LIMIT, search

    out = Output.of(args)
    if not 1 <= args.limit <= MAX_LIMIT:
        raise OperatorError(f"--limit must be between 1 and {MAX_LIMIT}", ExitCode.USAGE)
    config = settings()

    async def run() -> list[Any]:
        async with open_store(config) as db:
            return await search(
                db,
                subject=args.subject,
                kinds=args.kind,
                since=args.since,
                until=args.until,
                after_seq=args.after,
                limit=args.limit,
            )

    records = asyncio.run(run())
    rows = [
        {
            "seq": r.seq,
            "time": r.time.isoformat(),
            "kind": r.kind,
            "class_uid": r.class_uid,
            "subject": r.subject,
            "principal": r.principal,
            "detail": r.detail,
            "purged": r.document is None,
        }
        for r in records
    ]
    lines = [
        f"{r['seq']:>8}  {r['time'][:19]}  {r['kind']:<28} subject {r['subject'] or '-'}  by {r['principal'] or '-'}"
        for r in rows
    ]
    lines.append(
        f"{len(rows)} event(s)" + (f"; next page: --after {rows[-1]['seq']}" if len(rows) == args.limit else "")
    )
    out.result({"events": rows, "next_after": rows[-1]["seq"] if rows else args.after}, lines)
    return ExitCode.OK


def cmd_audit_public_key(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from ..store.audit import audit_signing_keys

    out = Output.of(args)
    config = settings()

    async def run() -> list[Any]:
        async with open_store(config) as db, db.connect() as conn:
            query = sa.select(audit_signing_keys).order_by(audit_signing_keys.c.created_us.desc())
            return list((await conn.execute(query)).all())

    keys = asyncio.run(run())
    if not keys:
        raise OperatorError("the audit trail has no signing key yet: it is created when the middleware first starts")
    if out.json_mode:
        out.result({"keys": [{"key_id": k.key_id, "public_pem": k.public_pem} for k in keys]})
    else:
        sys.stdout.write(keys[0].public_pem if not args.all else "".join(k.public_pem for k in keys))
    return ExitCode.OK


def cmd_audit_ocsf(args: argparse.Namespace) -> int:
    """Security events as OCSF documents, one JSON object per line; the cursor is kept in --cursor-file."""
    from pathlib import Path

    import orjson

    from ..audit.ocsf import security_kinds, to_ocsf_batch
    from ..audit.query import MAX_LIMIT, search

    out = Output.of(args)
    if not 1 <= args.limit <= MAX_LIMIT:
        raise OperatorError(f"--limit must be between 1 and {MAX_LIMIT}", ExitCode.USAGE)
    cursor_file = Path(args.cursor_file) if args.cursor_file else None
    after = args.after
    if after is None and cursor_file is not None and cursor_file.exists():
        text = cursor_file.read_text().strip()
        if not text.isdigit():
            raise OperatorError(f"--cursor-file {cursor_file} does not hold a cursor (a sequence number)")
        after = int(text)
    config = settings()

    async def run() -> list[Any]:
        async with open_store(config) as db:
            return await search(db, kinds=security_kinds(), after_seq=after, limit=args.limit)

    records = asyncio.run(run())
    documents, last = to_ocsf_batch(records)
    cursor = last if last is not None else after
    if out.json_mode:
        out.result({"events": documents, "cursor": cursor, "more": len(records) == args.limit})
    else:
        for document in documents:
            sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
        sys.stdout.flush()
    if cursor_file is not None and cursor is not None:
        cursor_file.write_text(f"{cursor}\n")
    return ExitCode.OK


def cmd_audit_prove(args: argparse.Namespace) -> int:
    """The inclusion proof of one event (by its uid): leaf, audit path and the batch's signed seal."""
    from pathlib import Path

    import orjson

    from ..audit.proofs import prove

    out = Output.of(args)
    config = settings()

    async def run() -> Any:
        async with open_store(config) as db:
            return await prove(db, args.uid, chain=args.chain)

    proof = asyncio.run(run())
    if proof is None:
        raise OperatorError("no sealed event with this uid (unknown, purged, or written before batches were sealed)")
    body = proof.to_json()
    if args.out:
        target = Path(args.out)
        if target.exists():
            raise OperatorError(f"{target} already exists: choose a new file")
        target.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
    out.result(body, [orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()])
    return ExitCode.OK


def cmd_audit_verify_proof(args: argparse.Namespace) -> int:
    """Check an event proof offline against a trusted public key: exit 0 when it holds, 1 otherwise."""
    from pathlib import Path

    import orjson

    from ..audit.proofs import EventProof, verify_proof

    out = Output.of(args)
    try:
        proof = EventProof.from_json(orjson.loads(Path(args.proof).read_bytes()))
        pem = Path(args.public_key).read_bytes()
    except (OSError, ValueError) as exc:
        raise OperatorError(f"cannot read the proof or the key ({exc})", ExitCode.USAGE) from None
    problem = verify_proof(proof, pem)
    out.result(
        {"valid": problem is None, "seq": proof.seq, "reason": problem},
        [f"event {proof.seq}: " + ("proof holds under the trusted key" if problem is None else problem)],
    )
    return ExitCode.OK if problem is None else ExitCode.FINDING


def register(subparsers: Any) -> None:
    audit = group(subparsers, "audit", "the tamper-evident audit trail")
    found = audit.add_parser("search", help="events by subject, kind and time, in trail order")
    found.add_argument("--subject")
    found.add_argument("--kind", action="append", help="event kind; 'authentication.*' matches a prefix (repeatable)")
    found.add_argument("--since", type=parse_time, help="ISO 8601 time (UTC unless an offset is given)")
    found.add_argument("--until", type=parse_time)
    found.add_argument("--after", type=int, help="only events after this sequence number (paging)")
    found.add_argument("--limit", type=int, default=100)
    found.set_defaults(func=cmd_audit_search)
    key = audit.add_parser("public-key", help="the Ed25519 public key (PEM) that verifies the trail's checkpoints")
    key.add_argument("--all", action="store_true", help="every key the trail was signed with, newest first")
    key.set_defaults(func=cmd_audit_public_key)
    ocsf = audit.add_parser(
        "ocsf", help="security events as OCSF 1.3 documents (one per line) after a cursor, for a SIEM"
    )
    ocsf.add_argument("--after", type=int, help="the cursor: only events after this sequence number")
    ocsf.add_argument("--cursor-file", help="read the cursor from this file and write the next one back")
    ocsf.add_argument("--limit", type=int, default=500)
    ocsf.set_defaults(func=cmd_audit_ocsf)
    proof = audit.add_parser("prove", help="the inclusion proof of one event: leaf, path, the batch's signed seal")
    proof.add_argument("uid", help="the event's uid")
    proof.add_argument("--chain", default="default")
    proof.add_argument("--out", help="also write the proof to this new file")
    proof.set_defaults(func=cmd_audit_prove)
    check = audit.add_parser("verify-proof", help="check an event proof offline against a trusted public key")
    check.add_argument("proof", help="a proof file written by `audit prove --out`")
    check.add_argument("--public-key", required=True, help="trusted Ed25519 public key (PEM)")
    check.set_defaults(func=cmd_audit_verify_proof)
