"""The `privacy-middleware` command: policy tooling, database upgrades, the demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

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
    console.print(f"{args.file}: OK — {info.name}, version {info.version}, effective {info.effective_date}")
    console.print(
        f"  {len(policy.categories)} categories, {len(policy.purposes)} purposes, "
        f"{len(policy.recipients)} recipients, {table.size} planned routes, "
        f"{len(policy.tracking.cookies)} cookie rules, {len(policy.retention)} retention rules"
    )
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


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.run import run_demo

    run_demo(host=args.host, port=args.port, data_dir=Path(args.data_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privacy-middleware", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    policy = sub.add_parser("policy", help="check and explain policy files").add_subparsers(
        dest="policy_command", required=True
    )
    check = policy.add_parser("check", help="validate a policy file")
    check.add_argument("file")
    check.set_defaults(func=cmd_policy_check)

    db = sub.add_parser("db", help="the privacy store").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="apply pending schema migrations (PRIVACY_DATABASE_URL)")
    upgrade.set_defaults(func=cmd_db_upgrade)

    demo = sub.add_parser("demo", help="run the demo shop behind the middleware")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--data-dir", default=os.environ.get("PRIVACY_DEMO_DIR", "demo-data"))
    demo.set_defaults(func=cmd_demo)
    add_serve_parser(sub)
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
