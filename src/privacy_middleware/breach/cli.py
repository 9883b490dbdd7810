"""`privacy-middleware canary ...`, `containment ...` and `incident report` (docs/breach.md)."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console

from ..errors import PrivacyError

console = Console(highlight=False, soft_wrap=True)


async def _with_runtime(work: Callable[[Any], Awaitable[int]]) -> int:
    from ..runtime import Runtime
    from ..settings import Settings

    runtime = Runtime(Settings())
    try:
        await runtime.ensure_started()
        return await work(runtime)
    finally:
        await runtime.stop()


def _time(us: int | None) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="seconds") if us else "-"


def cmd_canary(args: argparse.Namespace) -> int:
    async def work(runtime: Any) -> int:
        registry = runtime.breach.canaries
        if args.canary_command == "plant":
            import httpx

            from .canaries import fake_profile
            from .planters import RoutePlanter

            batch = args.batch or f"canary-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
            planted = 0
            async with httpx.AsyncClient(base_url=args.url, timeout=30) as client:
                planter = RoutePlanter(
                    client,
                    register_path=args.register_path,
                    login_path=args.login_path,
                    order_path=args.order_path,
                    orders=args.orders,
                )
                for index in range(args.count):
                    canary = await planter.plant(fake_profile(index))
                    rows = await registry.remember(canary, batch=batch)
                    planted += len(rows)
                    console.print(f"planted {canary.label}: customer and {len(canary.order_ids)} order(s)")
            console.print(f"batch {batch}: {planted} canary records remembered by keyed hash")
            return 0
        if args.canary_command == "retire":
            count = await registry.retire(args.selector)
            console.print(f"retired {count} canary record(s)")
            return 0 if count else 1
        rows = await registry.list(include_retired=args.all)
        if args.json:
            sys.stdout.write(
                orjson.dumps(
                    [
                        {
                            "digest": r.digest,
                            "kind": r.kind,
                            "label": r.label,
                            "batch": r.batch,
                            "planted": _time(r.planted_us),
                            "retired": _time(r.retired_us) if r.retired_us else None,
                        }
                        for r in rows
                    ],
                    option=orjson.OPT_INDENT_2,
                ).decode()
                + "\n"
            )
            return 0
        for r in rows:
            state = f"retired {_time(r.retired_us)}" if r.retired_us else "active"
            console.print(f"{r.digest[:16]}  {r.kind:<8} {r.batch:<28} {_time(r.planted_us)}  {state}  {r.label}")
        console.print(f"{len(rows)} canary record(s)")
        return 0

    return _run(work)


def cmd_containment(args: argparse.Namespace) -> int:
    async def work(runtime: Any) -> int:
        suspensions = runtime.breach.suspensions
        if args.containment_command == "lift":
            lifted = await suspensions.lift(args.kind, args.target, by=args.by, reason=args.reason)
            console.print(f"lifted {lifted.rows} suspension(s) of {args.kind} {args.target}")
            return 0 if lifted.rows else 1
        if args.containment_command == "suspend":
            created = await suspensions.suspend(args.kind, args.target, by=args.by, reason=args.reason)
            console.print(f"{args.kind} {args.target} {'suspended' if created else 'was already suspended'}")
            return 0
        rows = await suspensions.list(include_lifted=args.all)
        for r in rows:
            state = f"lifted {_time(r.lifted_us)} by {r.lifted_by}" if r.lifted_us else "active"
            console.print(f"{r.target_kind:<10} {r.target:<30} since {_time(r.since_us)}  {r.reason}  {state}")
        console.print(f"{len(rows)} suspension(s)")
        return 0

    return _run(work)


def _run(work: Callable[[Any], Awaitable[int]]) -> int:
    try:
        return asyncio.run(_with_runtime(work))
    except PrivacyError as exc:
        console.print(f"[red]refused[/red]: {exc.message}")
        return 1


def add_breach_parsers(sub: Any) -> None:
    canary = sub.add_parser("canary", help="decoy records that raise a critical finding when disclosed")
    canary_sub = canary.add_subparsers(dest="canary_command", required=True)
    plant = canary_sub.add_parser("plant", help="create decoy customers and orders through the shop's routes")
    plant.add_argument("--url", required=True, help="base URL of the shop behind the middleware")
    plant.add_argument("--count", type=int, default=3, help="decoy customers (default 3)")
    plant.add_argument("--orders", type=int, default=1, help="orders per decoy customer (default 1)")
    plant.add_argument("--batch", default=None, help="a name for this batch (retire it by name later)")
    plant.add_argument("--register-path", default="/auth/register")
    plant.add_argument("--login-path", default="/auth/login")
    plant.add_argument("--order-path", default="/checkout")
    plant.set_defaults(func=cmd_canary)
    listing = canary_sub.add_parser("list", help="canary records (digest prefix, kind, batch, state)")
    listing.add_argument("--all", action="store_true", help="include retired canaries")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_canary)
    retire = canary_sub.add_parser("retire", help="stop watching canaries (by digest prefix, batch or record id)")
    retire.add_argument("selector", nargs="+")
    retire.set_defaults(func=cmd_canary)

    containment = sub.add_parser("containment", help="suspended principals and recipients")
    containment_sub = containment.add_subparsers(dest="containment_command", required=True)
    clist = containment_sub.add_parser("list", help="active suspensions")
    clist.add_argument("--all", action="store_true", help="include lifted ones")
    clist.set_defaults(func=cmd_containment)
    for name, help_text in (("lift", "restore access (audited)"), ("suspend", "suspend access by hand (audited)")):
        action = containment_sub.add_parser(name, help=help_text)
        action.add_argument("kind", choices=["principal", "recipient"])
        action.add_argument("target")
        action.add_argument("--by", default="officer", help="who decides (recorded in the audit trail)")
        action.add_argument("--reason", default=f"{name} by an officer")
        action.set_defaults(func=cmd_containment)
    add_incident_parser(sub)
    add_witness_parser(sub)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PrivacyError("invalid_window", f"{value!r} is not an ISO 8601 time.", 400) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_incident(args: argparse.Namespace) -> int:
    from .report import build_report, render_html, render_markdown

    async def work(runtime: Any) -> int:
        report = await build_report(
            runtime.database,
            runtime.policy,
            since=_parse_time(args.since),
            until=_parse_time(args.until),
            principal=args.principal,
            recipient=args.recipient,
            finding=args.finding,
        )
        if args.format == "json":
            sys.stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
        elif args.format == "html":
            sys.stdout.write(render_html(report))
        else:
            sys.stdout.write(render_markdown(report))
        return 0

    return _run(work)


def add_incident_parser(sub: Any) -> None:
    incident = sub.add_parser("incident", help="incident reports from the audit trail")
    incident_sub = incident.add_subparsers(dest="incident_command", required=True)
    report = incident_sub.add_parser(
        "report", help="affected subjects, categories, recipients and the GDPR Art. 33/34 drafts"
    )
    report.add_argument("--from", dest="since", help="ISO 8601 start (default: 24 h before --to)")
    report.add_argument("--to", dest="until", help="ISO 8601 end (default: now)")
    scope = report.add_mutually_exclusive_group()
    scope.add_argument("--principal")
    scope.add_argument("--recipient")
    scope.add_argument("--finding", help="a finding's id: its principal and window")
    form = report.add_mutually_exclusive_group()
    form.add_argument("--json", dest="format", action="store_const", const="json")
    form.add_argument("--md", dest="format", action="store_const", const="md")
    form.add_argument("--html", dest="format", action="store_const", const="html")
    report.set_defaults(func=cmd_incident, format="md")


def cmd_witness(args: argparse.Namespace) -> int:
    from pathlib import Path

    import uvicorn

    from ..audit.checkpoint import load_public_key
    from ..keyfiles import load_or_create_ed25519
    from .witness_server import WitnessApp, WitnessStore

    log_keys = [load_public_key(Path(path).read_bytes()) for path in args.log_key]
    key = load_or_create_ed25519(Path(args.key), "witness signing key")
    app = WitnessApp(log_keys, key, WitnessStore(Path(args.store)), name=args.name)
    console.print(f"witness {args.name} on http://{args.host}:{args.port}/ (notes in {args.store})")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on", proxy_headers=False)
    return 0


def add_witness_parser(sub: Any) -> None:
    witness = sub.add_parser("witness", help="a checkpoint witness to run on another machine")
    witness_sub = witness.add_subparsers(dest="witness_command", required=True)
    serve = witness_sub.add_parser("serve", help="accept, check and countersign the log's checkpoints")
    serve.add_argument("--log-key", action="append", required=True, help="the log's public key (PEM); repeatable")
    serve.add_argument("--key", required=True, help="the witness's own Ed25519 key (created if missing)")
    serve.add_argument("--store", required=True, help="JSON-lines file of witnessed checkpoints")
    serve.add_argument("--name", default="witness", help="the witness's name in its signature lines")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8700)
    serve.set_defaults(func=cmd_witness)
