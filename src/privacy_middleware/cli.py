"""The `privacy-middleware` command: policy tooling, database upgrades, the demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from .cli_adoption import add_policy_draft_parser, add_report_parser
from .errors import ConfigError
from .serve import add_serve_parser

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def cmd_policy_check(args: argparse.Namespace) -> int:
    from .policy.compile import compile_policy
    from .policy.load import PolicyError, load_policy

    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        for issue in exc.issues:
            err_console.print(f"[red]error[/red] {issue}", markup=True, soft_wrap=True)
        err_console.print(f"{len(exc.issues)} problem(s) in {args.file}")
        return 1
    table = compile_policy(policy)
    info = policy.policy
    problems = 0
    for example in args.example or []:
        route, _, payload_file = example.partition("=")
        from .policy.explain import unmatched_selectors

        try:
            payload = orjson.loads(Path(payload_file).read_bytes())
            missing = unmatched_selectors(policy, route, payload)
        except (OSError, orjson.JSONDecodeError, KeyError) as exc:
            err_console.print(f"[red]error[/red] example {example!r}: {exc}", markup=True)
            problems += 1
            continue
        for selector in missing:
            err_console.print(
                f"[yellow]warning[/yellow] {route}: selector {selector!r} matches nothing in {payload_file}",
                markup=True,
            )
        problems += len(missing)
    console.print(f"{args.file}: OK — {info.name}, version {info.version}, effective {info.effective_date}")
    console.print(
        f"  {len(policy.categories)} categories, {len(policy.purposes)} purposes, "
        f"{len(policy.recipients)} recipients, {table.size} planned routes, "
        f"{len(policy.tracking.cookies)} cookie rules, {len(policy.retention)} retention rules"
    )
    return 1 if problems else 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from .policy.explain import explain
    from .policy.load import load_policy

    if args.file is None:
        from .settings import Settings

        args.file = str(Settings().policy_file)
    policy = load_policy(args.file)
    try:
        views = explain(policy, args.recipient, args.route)
    except KeyError as exc:
        err_console.print(f"[red]error[/red] {exc.args[0]}", markup=True)
        return 1
    from .policy.explain import find_spec, request_views

    incoming = request_views(policy, find_spec(policy, args.route))
    if incoming:
        console.print(f"{args.route}: what the shop receives (the way in, for every caller):")
        for view in incoming:
            console.print(f"  {view.select:<32} {view.category:<44} {view.transform:<24} {view.reason}")
    console.print(f"{args.recipient} on {args.route} (a signed-in customer always sees their own records in full):")
    if not views:
        console.print("  the route's response carries no classified fields")
    for view in views:
        console.print(f"  {view.select:<32} {view.category:<44} {view.transform:<24} {view.reason}")
    return 0


def cmd_policy_render(args: argparse.Namespace) -> int:
    from .policy.load import PolicyError, load_policy
    from .policy.render import render

    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        for issue in exc.issues:
            err_console.print(f"[red]error[/red] {issue}", markup=True, soft_wrap=True)
        err_console.print(f"{len(exc.issues)} problem(s) in {args.file}")
        return 1
    sys.stdout.write(render(policy, args.format))
    sys.stdout.flush()
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from .settings import Settings
    from .store import Database

    settings = Settings()

    async def run() -> list[int]:
        db = Database(settings.database_url)
        try:
            await db.check()
            return await db.upgrade()
        finally:
            await db.dispose()

    applied = asyncio.run(run())
    console.print(f"applied migrations: {applied}" if applied else "database is up to date")
    return 0


async def _key_service() -> Any:
    """The KeyService for PRIVACY_KEYS and the policy's tenant, on a migrated store."""
    from .crypto import KeyService
    from .policy.load import load_policy
    from .settings import Settings
    from .store import Database

    settings = Settings()
    policy = load_policy(settings.policy_file)
    db = Database(settings.database_url)
    await db.check()
    await db.upgrade()
    service = await KeyService.open(settings.keys_url, database=db, tenant=policy.policy.tenant)
    return service, db


def cmd_keys(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    async def run() -> int:
        service, db = await _key_service()
        try:
            if args.keys_command == "rotate":
                rotated = await service.rotate()
                console.print(
                    f"generation {rotated.generation} is now primary (root version {rotated.root_version}); "
                    f"{rotated.pending_rewrap} subject keys still wrapped by older generations — "
                    "run `privacy-middleware keys rewrap`"
                )
            elif args.keys_command == "rewrap":
                with Progress(
                    TextColumn("rewrapping subject keys"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                    transient=False,
                ) as progress:
                    task = progress.add_task("rewrap", total=None)

                    def advance(done: int, total: int) -> None:
                        progress.update(task, completed=done, total=total)

                    result = await service.rewrap(batch_size=args.batch_size, progress=advance)
                console.print(
                    f"rewrapped {result.rewrapped} subject keys under generation {result.primary_generation}; "
                    f"{result.failed} failed, {result.remaining} remaining"
                )
                return 0 if result.failed == 0 and result.remaining == 0 else 1
            else:
                status = await service.status()
                console.print(
                    f"provider {status.provider}, tenant {status.tenant}, "
                    f"primary generation {status.primary_generation}"
                )
                for generation in status.generations:
                    mark = " (primary)" if generation.primary else ""
                    console.print(
                        f"  generation {generation.generation}{mark}: root version "
                        f"{generation.root_version}, {generation.subject_keys} subject keys"
                    )
                console.print(
                    f"  pending rewrap {status.pending_rewrap}, tombstones {status.tombstones}, "
                    f"vault tokens {status.tokens}"
                )
            return 0
        finally:
            await service.close()
            await db.dispose()

    return asyncio.run(run())


def cmd_audit_export(args: argparse.Namespace) -> int:
    from .audit.export import export
    from .settings import Settings
    from .store import Database

    settings = Settings()

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            await db.check()
            summary = await export(db, args.out)
        finally:
            await db.dispose()
        console.print(
            f"exported {summary.events} events ({summary.purged} purged bodies) and "
            f"{summary.checkpoints} signed checkpoints to {summary.directory}"
        )
        return 0

    return asyncio.run(run())


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from .audit.verify import main as verify_main

    argv = [str(args.directory), "--public-key", str(args.public_key)]
    if args.report:
        argv += ["--report", str(args.report)]
    if args.witness:
        argv += ["--witness", str(args.witness)]
    return verify_main(argv)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.run import run_demo

    run_demo(host=args.host, port=args.port, data_dir=Path(args.data_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .rights.cli import add_rights_parsers

    parser = argparse.ArgumentParser(prog="privacy-middleware", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    policy = sub.add_parser("policy", help="check and explain policy files").add_subparsers(
        dest="policy_command", required=True
    )
    check = policy.add_parser("check", help="validate a policy file")
    check.add_argument("file")
    check.add_argument(
        "--example",
        action="append",
        metavar="'METHOD /path=payload.json'",
        help="report response selectors that match nothing in this example payload",
    )
    check.set_defaults(func=cmd_policy_check)
    explain = policy.add_parser("explain", help="what a recipient would see on a route, field by field")
    explain.add_argument("file", nargs="?", default=None)
    explain.add_argument("--recipient", required=True)
    explain.add_argument("--route", required=True, help="e.g. 'GET /orders/{id}'")
    explain.set_defaults(func=cmd_policy_explain)
    render = policy.add_parser("render", help="write the human-readable disclosure of a policy file")
    render.add_argument("file")
    render.add_argument("--format", choices=["md", "html"], default="md")
    render.set_defaults(func=cmd_policy_render)
    from .routing.coverage import add_coverage_parser

    add_coverage_parser(policy)
    add_policy_draft_parser(policy)

    db = sub.add_parser("db", help="the privacy store").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="apply pending schema migrations (PRIVACY_DATABASE_URL)")
    upgrade.set_defaults(func=cmd_db_upgrade)

    keys = sub.add_parser("keys", help="key rotation and status (PRIVACY_KEYS)").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser("rotate", help="make a new key generation primary; older ones decrypt only").set_defaults(
        func=cmd_keys
    )
    rewrap = keys.add_parser("rewrap", help="rewrap every subject key under the primary generation (resumable)")
    rewrap.add_argument("--batch-size", type=int, default=500)
    rewrap.set_defaults(func=cmd_keys)
    keys.add_parser("status", help="key generations and counts").set_defaults(func=cmd_keys)

    audit = sub.add_parser("audit", help="export and verify the tamper-evident audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    audit_export = audit.add_parser("export", help="write the trail, checkpoints and public key to a folder")
    audit_export.add_argument("--out", required=True)
    audit_export.set_defaults(func=cmd_audit_export)
    audit_verify = audit.add_parser(
        "verify",
        help="verify an export offline; exit 0 intact, 1 altered, 2 gap/truncation, 3 bad signature, "
        "4 malformed input, 5 witness mismatch",
    )
    audit_verify.add_argument("directory")
    audit_verify.add_argument("--public-key", required=True)
    audit_verify.add_argument("--report")
    audit_verify.add_argument("--witness", help="witness URL or JSON-lines file of witnessed checkpoints")
    audit_verify.set_defaults(func=cmd_audit_verify)

    demo = sub.add_parser("demo", help="run the demo shop behind the middleware")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--data-dir", default=os.environ.get("PRIVACY_DEMO_DIR", "demo-data"))
    demo.set_defaults(func=cmd_demo)
    add_rights_parsers(sub)
    add_report_parser(sub)
    add_serve_parser(sub)
    from .breach.cli import add_breach_parsers

    add_breach_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: Any = args.func(args)
        return int(result)
    except ConfigError as exc:
        err_console.print(f"[red]error[/red] {exc}", markup=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
