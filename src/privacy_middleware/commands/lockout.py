"""`lockout list` and `lockout reset SEQ`: the login lockouts the audit trail recorded, and lifting one.

A lockout is named by the sequence number of its Detection Finding (`lockout list` shows them); the
account it locked is read from the trail's encrypted side record, never typed or printed. Lifting
it is recorded first (the reveal and a `lockout_reset` finding), as in the officer console.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from .base import ExitCode, OperatorError, Output, group, open_store, settings

LOCKOUT = "detection_finding.lockout"
RESET = "detection_finding.lockout_reset"


def cmd_lockout_list(args: argparse.Namespace) -> int:
    from ..audit.query import MAX_LIMIT, search

    out = Output.of(args)
    config = settings()

    async def run() -> tuple[list[Any], set[int]]:
        async with open_store(config) as db:
            found = await search(db, kinds=[LOCKOUT], limit=MAX_LIMIT, after_seq=args.after)
            resets = await search(db, kinds=[RESET], limit=MAX_LIMIT, after_seq=args.after)
        lifted = {int(r.detail.get("related", {}).get("finding_seq", -1)) for r in resets}
        return found, lifted

    found, lifted = asyncio.run(run())
    rows = [
        {
            "seq": r.seq,
            "time": r.time.isoformat(),
            "title": r.detail.get("title"),
            "scope": (r.detail.get("related") or {}).get("key"),
            "subject": r.subject,
            "network": r.detail.get("network"),
            "reset": r.seq in lifted,
        }
        for r in found
        if args.all or r.seq not in lifted
    ]
    lines = [
        f"{r['seq']:>8}  {r['time'][:19]}  {r['title']}  ({r['scope']})  subject {r['subject'] or '-'}"
        f"  from {r['network'] or '-'}{'  [reset]' if r['reset'] else ''}"
        for r in rows
    ]
    lines.append(f"{len(rows)} lockout(s); lift one with `privacy-middleware lockout reset SEQ`")
    out.result({"lockouts": rows}, lines)
    return ExitCode.OK


def cmd_lockout_reset(args: argparse.Namespace) -> int:
    from ..audit import events
    from ..audit.query import reveal_side_record, search
    from ..runtime import Runtime

    out = Output.of(args)
    config = settings()
    if not config.redis_url:
        raise OperatorError(
            "without PRIVACY_REDIS_URL the lockout counters live in the serving process's memory: "
            "lift it from the officer console (<mount>/admin) or wait for it to expire"
        )

    async def run() -> str | None:
        runtime = Runtime(config)
        try:
            await runtime.ensure_started()
            found = await search(runtime.database, kinds=[LOCKOUT], after_seq=args.seq - 1, limit=1)
            if not found or found[0].seq != args.seq or found[0].document is None:
                raise OperatorError(f"no lockout finding {args.seq} (see `privacy-middleware lockout list`)")
            finding = found[0]
            ref = (finding.document.get("refs") or {}).get("ref") if finding.document else None
            personal = await reveal_side_record(runtime.database, runtime.audit_log.sealer, ref) if ref else None
            if not personal or not personal.get("username"):
                raise OperatorError(f"lockout {args.seq}: its account is no longer recorded (retention)")
            await runtime.audit.emit_strict(
                events.admin_read(principal=args.operator, query={"reveal": args.seq}, result_count=1)
            )
            await runtime.audit.emit_strict(
                events.detection_finding(
                    "lockout_reset",
                    title="An operator lifted a lockout",
                    severity_id=events.SEVERITY_LOW,
                    subject=finding.subject,
                    related={"finding_seq": args.seq, "officer": args.operator},
                )
            )
            await runtime.login_guard.reset(personal["username"], personal.get("ip"))
            return finding.subject
        finally:
            await runtime.stop()

    subject = asyncio.run(run())
    out.result(
        {"reset": args.seq, "subject": subject},
        f"lockout {args.seq} lifted (subject {subject or '-'}); recorded in the audit trail",
    )
    return ExitCode.OK


def register(subparsers: Any) -> None:
    lockout = group(subparsers, "lockout", "login lockouts recorded in the audit trail")
    listing = lockout.add_parser("list", help="lockouts not yet lifted (with --all, also lifted ones)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--after", type=int, default=None, help="only findings after this sequence number")
    listing.set_defaults(func=cmd_lockout_list)
    reset = lockout.add_parser("reset", help="lift the lockout of finding SEQ (needs PRIVACY_REDIS_URL)")
    reset.add_argument("seq", type=int)
    reset.add_argument("--operator", default="cli", help="who lifts it, for the audit trail")
    reset.set_defaults(func=cmd_lockout_reset)
