"""`dsar list [--overdue]` and `dsar show ID`: subject requests in the privacy store, for the officer."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from .base import ExitCode, OperatorError, Output, group, open_store, settings


def cmd_dsar_list(args: argparse.Namespace) -> int:
    from ..store.rights import OPEN_STATUSES, RightsRepository, utcnow

    out = Output.of(args)
    config = settings()

    async def run() -> list[Any]:
        async with open_store(config) as db:
            statuses = list(OPEN_STATUSES) if args.overdue or args.open else args.status
            return await RightsRepository(db).listing(status=statuses, limit=args.limit)

    now = utcnow()
    requests = [r for r in asyncio.run(run()) if not args.overdue or r.overdue(now)]
    rows = [
        {
            "id": r.id,
            "type": r.kind,
            "status": r.status,
            "subject": r.subject,
            "created_at": r.created_at.isoformat(),
            "due_at": r.due_at.isoformat(),
            "overdue": r.overdue(now),
        }
        for r in requests
    ]
    lines = [
        f"{r['id']}  {r['type']:<8} {r['status']:<10} due {r['due_at'][:16]}{'  OVERDUE' if r['overdue'] else ''}"
        f"  subject {r['subject']}"
        for r in rows
    ]
    lines.append(f"{len(rows)} request(s)" + (", all overdue" if args.overdue and rows else ""))
    out.result({"requests": rows, "count": len(rows)}, lines)
    return ExitCode.OK


def cmd_dsar_show(args: argparse.Namespace) -> int:
    from ..store.rights import RightsRepository

    out = Output.of(args)
    config = settings()

    async def run() -> Any:
        async with open_store(config) as db:
            return await RightsRepository(db).get(args.id)

    request = asyncio.run(run())
    if request is None:
        raise OperatorError(f"no subject request {args.id!r} (see `privacy-middleware dsar list`)")
    out.result(request.to_json())
    return ExitCode.OK


def register(subparsers: Any) -> None:
    dsar = group(subparsers, "dsar", "data-subject requests")
    listing = dsar.add_parser("list", help="subject requests, overdue first (open and closed)")
    listing.add_argument("--overdue", action="store_true", help="only open requests past their due date")
    listing.add_argument("--open", action="store_true", help="only open requests")
    listing.add_argument("--status", action="append", help="only requests in this status (repeatable)")
    listing.add_argument("--limit", type=int, default=200)
    listing.set_defaults(func=cmd_dsar_list)
    show = dsar.add_parser("show", help="one subject request: steps, result, errors")
    show.add_argument("id")
    show.set_defaults(func=cmd_dsar_show)
