"""The `privacy-middleware` command: policy tooling, configuration, the store, keys, audit, rights, the demo.

Exit codes (docs/cli.md): 0 ok, 1 a finding or a failure, 2 usage (bad arguments or configuration),
130 interrupted; `audit verify` keeps its own finer table. Every command takes `--env-file` and,
where it prints a result, `--json`. Command groups added later live in `commands/`, one module each.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from . import __version__
from .cli_adoption import add_policy_draft_parser, add_policy_trace_parser, add_report_parser
from .commands import audit as audit_commands
from .commands import config as config_commands
from .commands import dsar as dsar_commands
from .commands import lockout as lockout_commands
from .commands.base import PROG, ExitCode, OperatorError, Output, add_common_options, open_store, run_command
from .commands.base import settings as load_settings
from .serve import add_serve_parser

# Command-group modules with `register(subparsers)`; add yours here.
GROUPS = [config_commands, dsar_commands, audit_commands, lockout_commands]


def _policy_or_findings(file: str, out: Output, *, as_result: bool = True) -> Any:
    """The policy, or None after reporting its problems (the result of `check`; stderr for the others)."""
    from .policy.load import PolicyError, load_policy

    try:
        return load_policy(file)
    except PolicyError as exc:
        issues = [str(issue) for issue in exc.issues]
        if not as_result:
            for issue in issues:
                print(f"error {issue}", file=sys.stderr)
            print(f"{len(issues)} problem(s) in {file}", file=sys.stderr)
            return None
        out.result(
            {"file": file, "ok": False, "problems": issues},
            [*(f"error {issue}" for issue in issues), f"{len(issues)} problem(s) in {file}"],
        )
        return None


def cmd_policy_check(args: argparse.Namespace) -> int:
    from .policy.compile import compile_policy
    from .policy.explain import unmatched_selectors

    out = Output.of(args)
    if not Path(args.file).is_file():
        raise OperatorError(f"{args.file}: no such policy file", ExitCode.USAGE)
    policy = _policy_or_findings(args.file, out)
    if policy is None:
        return ExitCode.FINDING
    table = compile_policy(policy)
    info = policy.policy
    findings: list[str] = []
    for example in args.example or []:
        route, sep, payload_file = example.partition("=")
        if not sep or not route.strip() or not payload_file:
            raise OperatorError(f"--example {example!r}: write it as 'METHOD /path=payload.json'", ExitCode.USAGE)
        try:
            payload = orjson.loads(Path(payload_file).read_bytes())
        except OSError as exc:
            raise OperatorError(f"--example {example!r}: {exc.strerror} ({payload_file})", ExitCode.USAGE) from None
        except orjson.JSONDecodeError:
            raise OperatorError(f"--example {example!r}: {payload_file} is not JSON", ExitCode.USAGE) from None
        try:
            missing = unmatched_selectors(policy, route, payload)
        except KeyError as exc:
            findings.append(f"{route}: {exc.args[0]}")
            continue
        findings.extend(f"{route}: selector {selector!r} matches nothing in {payload_file}" for selector in missing)
    summary = {
        "categories": len(policy.categories),
        "purposes": len(policy.purposes),
        "recipients": len(policy.recipients),
        "planned_routes": table.size,
        "cookie_rules": len(policy.tracking.cookies),
        "retention_rules": len(policy.retention),
    }
    head = f"{args.file}: {'OK' if not findings else f'{len(findings)} finding(s)'} — {info.name}, "
    head += f"version {info.version}, effective {info.effective_date}"
    out.result(
        {
            "file": args.file,
            "ok": not findings,
            "name": info.name,
            "version": info.version,
            "effective_date": str(info.effective_date),
            "summary": summary,
            "findings": findings,
        },
        [
            *(f"finding {finding}" for finding in findings),
            head,
            f"  {summary['categories']} categories, {summary['purposes']} purposes, "
            f"{summary['recipients']} recipients, {summary['planned_routes']} planned routes, "
            f"{summary['cookie_rules']} cookie rules, {summary['retention_rules']} retention rules",
        ],
    )
    return ExitCode.FINDING if findings else ExitCode.OK


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from .policy.explain import explain

    out = Output.of(args)
    file = args.file if args.file is not None else str(load_settings().policy_file)
    policy = _policy_or_findings(file, out, as_result=False)
    if policy is None:
        return ExitCode.FINDING
    if args.recipient not in policy.recipients and args.recipient != "customer":
        known = sorted(policy.recipients)
        close = difflib.get_close_matches(args.recipient, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; declared: {', '.join(known) or 'none'}"
        raise OperatorError(f"--recipient {args.recipient!r} is not a recipient in {file}{hint}", ExitCode.USAGE)
    try:
        views = explain(policy, args.recipient, args.route)
    except KeyError as exc:
        raise OperatorError(str(exc.args[0]), ExitCode.USAGE) from None
    from .policy.explain import find_spec, request_views

    incoming = request_views(policy, find_spec(policy, args.route))
    lines = []
    if incoming:
        lines.append(f"{args.route}: what the shop receives (the way in, for every caller):")
        lines.extend(f"  {v.select:<32} {v.category:<44} {v.transform:<24} {v.reason}" for v in incoming)
    lines.append(f"{args.recipient} on {args.route} (a signed-in customer always sees their own records in full):")
    if not views:
        lines.append("  the route's response carries no classified fields")
    lines.extend(f"  {v.select:<32} {v.category:<44} {v.transform:<24} {v.reason}" for v in views)
    out.result(
        {
            "recipient": args.recipient,
            "route": args.route,
            "request_fields": [
                {"select": v.select, "category": v.category, "transform": v.transform, "reason": v.reason}
                for v in incoming
            ],
            "fields": [
                {"select": v.select, "category": v.category, "transform": v.transform, "reason": v.reason}
                for v in views
            ],
        },
        lines,
    )
    return ExitCode.OK


def cmd_policy_render(args: argparse.Namespace) -> int:
    from .policy.render import render

    out = Output.of(args)
    policy = _policy_or_findings(args.file, out, as_result=False)
    if policy is None:
        return ExitCode.FINDING
    sys.stdout.write(render(policy, args.format))
    sys.stdout.flush()
    return ExitCode.OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    out = Output.of(args)
    config = load_settings()

    async def run() -> list[int]:
        async with open_store(config, require_tables=False) as db:
            return await db.upgrade()

    applied = asyncio.run(run())
    out.result({"applied": applied}, f"applied migrations: {applied}" if applied else "database is up to date")
    return ExitCode.OK


async def _key_service() -> Any:
    """The KeyService for PRIVACY_KEYS and the policy's tenant, on a migrated store."""
    from .crypto import KeyService
    from .policy.load import load_policy
    from .store import Database

    config = load_settings()
    policy = load_policy(config.policy_file)
    db = Database(config.database_url)
    await db.check()
    await db.upgrade()
    service = await KeyService.open(
        config.keys_url, database=db, tenant=policy.policy.tenant, guard=config.outbound.configured_guard()
    )
    return service, db


def cmd_keys(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out = Output.of(args)

    async def run() -> int:
        service, db = await _key_service()
        try:
            if args.keys_command == "rotate":
                rotated = await service.rotate()
                out.result(
                    {
                        "generation": rotated.generation,
                        "root_version": rotated.root_version,
                        "pending_rewrap": rotated.pending_rewrap,
                    },
                    f"generation {rotated.generation} is now primary (root version {rotated.root_version}); "
                    f"{rotated.pending_rewrap} subject keys still wrapped by older generations — "
                    f"run `{PROG} keys rewrap`",
                )
            elif args.keys_command == "rewrap":
                with Progress(
                    TextColumn("rewrapping subject keys"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=Console(stderr=True),
                    transient=False,
                    disable=out.json_mode,
                ) as progress:
                    task = progress.add_task("rewrap", total=None)

                    def advance(done: int, total: int) -> None:
                        progress.update(task, completed=done, total=total)

                    result = await service.rewrap(batch_size=args.batch_size, progress=advance)
                out.result(
                    {
                        "rewrapped": result.rewrapped,
                        "primary_generation": result.primary_generation,
                        "failed": result.failed,
                        "remaining": result.remaining,
                    },
                    f"rewrapped {result.rewrapped} subject keys under generation {result.primary_generation}; "
                    f"{result.failed} failed, {result.remaining} remaining",
                )
                return ExitCode.OK if result.failed == 0 and result.remaining == 0 else ExitCode.FINDING
            else:
                status = await service.status()
                lines = [f"provider {status.provider}, tenant {status.tenant}, "]
                lines[0] += f"primary generation {status.primary_generation}"
                for generation in status.generations:
                    mark = " (primary)" if generation.primary else ""
                    lines.append(
                        f"  generation {generation.generation}{mark}: root version "
                        f"{generation.root_version}, {generation.subject_keys} subject keys"
                    )
                lines.append(
                    f"  pending rewrap {status.pending_rewrap}, tombstones {status.tombstones}, "
                    f"vault tokens {status.tokens}"
                )
                out.result(
                    {
                        "provider": status.provider,
                        "tenant": status.tenant,
                        "primary_generation": status.primary_generation,
                        "generations": [
                            {
                                "generation": g.generation,
                                "primary": g.primary,
                                "root_version": g.root_version,
                                "subject_keys": g.subject_keys,
                            }
                            for g in status.generations
                        ],
                        "pending_rewrap": status.pending_rewrap,
                        "tombstones": status.tombstones,
                        "vault_tokens": status.tokens,
                    },
                    lines,
                )
            return ExitCode.OK
        finally:
            await service.close()
            await db.dispose()

    return asyncio.run(run())


def cmd_audit_export(args: argparse.Namespace) -> int:
    from .audit.export import EVENTS_FILE, export

    out = Output.of(args)
    if (Path(args.out) / EVENTS_FILE).exists():
        raise OperatorError(f"{args.out} already holds an audit export: choose an empty folder")
    config = load_settings()

    async def run() -> Any:
        async with open_store(config) as db:
            return await export(db, args.out)

    summary = asyncio.run(run())
    out.result(
        {
            "directory": str(summary.directory),
            "events": summary.events,
            "purged": summary.purged,
            "checkpoints": summary.checkpoints,
        },
        f"exported {summary.events} events ({summary.purged} purged bodies) and "
        f"{summary.checkpoints} signed checkpoints to {summary.directory}",
    )
    return ExitCode.OK


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
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    from .rights.cli import add_rights_parsers

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Make a shop API keep the promises of its privacy policy.",
        epilog="exit codes: 0 ok, 1 finding or failure, 2 usage or configuration error (docs/cli.md)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--json", action="store_true", default=False, help="print results as JSON")
    parser.add_argument(
        "--env-file",
        action="append",
        default=None,
        metavar="FILE",
        help="read PRIVACY_* settings from this file first (repeatable; later files win)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    policy = sub.add_parser("policy", help="check and explain policy files").add_subparsers(
        dest="policy_command", required=True
    )
    check = policy.add_parser("check", help="validate a policy file (exit 1 on any problem or finding)")
    check.add_argument("file")
    check.add_argument(
        "--example",
        action="append",
        metavar="'METHOD /path=payload.json'",
        help="report response selectors that match nothing in this example payload (a finding)",
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
    add_policy_trace_parser(policy)

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
    for group in GROUPS:
        group.register(sub)
    add_common_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
