"""`privacy-middleware dsar export|erase` and `privacy-middleware retention run [--dry-run]`.

The shop adapter is named with `--adapter` (or PRIVACY_SHOP_ADAPTER): `none` (the default: only the
data the middleware holds itself), `demo` for the bundled demo shop (its database under
PRIVACY_DATA_DIR), or `package.module:factory` where `factory(runtime)` returns a ShopAdapter. If the
runtime carries an audit writer (`runtime.audit`), every deletion and anonymisation is recorded through it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from ..errors import PrivacyError
from .adapter import ShopAdapter
from .adapters import load_adapter
from .retention import RetentionReport, RetentionRunner, RuleOutcome


class _Console:
    """rich's console, loaded when a command prints (rich comes with the `cli` extra)."""

    def print(self, *objects: Any, **options: Any) -> None:
        from rich.console import Console

        Console(highlight=False, soft_wrap=True).print(*objects, **options)


console = _Console()

ADAPTER_ENV = "PRIVACY_SHOP_ADAPTER"


async def _with_runtime(adapter_spec: str, work: Callable[[Any, ShopAdapter, Any], Awaitable[int]]) -> int:
    from ..runtime import Runtime
    from ..settings import Settings

    runtime = Runtime(Settings())
    try:
        await runtime.ensure_started()
        audit = getattr(runtime, "audit", None)
        adapter = load_adapter(adapter_spec, runtime)
        return await work(runtime, adapter, audit)
    finally:
        await runtime.stop()


def dsar_export(subject: str, out: Path, *, adapter_spec: str) -> int:
    from .service import RightsService

    async def work(runtime: Any, adapter: ShopAdapter, audit: Any) -> int:
        service = RightsService.for_runtime(runtime, adapter, audit=audit)
        request, document = await service.export(subject, principal="cli", reason="operator export")
        data = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds personal data
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        console.print(
            f"export {request.id}: {len(document['shop']['records'])} shop records, "
            f"{len(document['consent']['history'])} consent records, "
            f"{len(document['recipients'])} recipients -> {out}"
        )
        return 0

    return asyncio.run(_with_runtime(adapter_spec, work))


def dsar_erase(subject: str, *, adapter_spec: str, reason: str) -> int:
    from .service import RightsService

    async def work(runtime: Any, adapter: ShopAdapter, audit: Any) -> int:
        service = RightsService.for_runtime(runtime, adapter, audit=audit)
        request = await service.erase(subject, principal="cli", reason=reason)
        if request.status != "completed":
            console.print(
                f"erasure {request.id} is {request.status}: step {request.failed_step} failed "
                f"({request.error}); it will be retried"
            )
            return 1
        shop = next((s.detail for s in request.steps if s.name == "shop" and s.outcome == "done"), {})
        console.print(
            f"erasure {request.id} completed: {len(shop.get('deleted', []))} deleted, "
            f"{len(shop.get('anonymised', []))} anonymised, {len(shop.get('kept', []))} kept"
        )
        for kept in shop.get("kept", []):
            console.print(f"  kept {kept['item']}: {kept['reason']}")
        for gap in _receipt_claims((request.result or {}).get("receipt")).get("not_covered", []):
            console.print(f"  not covered: {gap}")
        console.print(f"receipt: {(request.result or {}).get('receipt')}")
        return 0

    return asyncio.run(_with_runtime(adapter_spec, work))


def _receipt_claims(receipt: Any) -> dict[str, Any]:
    """The receipt's payload (already signed by us; read here only to print what it says)."""
    import base64

    if not isinstance(receipt, str) or receipt.count(".") != 2:
        return {}
    payload = receipt.split(".")[1]
    claims: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def print_report(report: RetentionReport) -> None:
    from rich.table import Table

    table = Table(title=f"retention run {report.run_id}{' (dry run)' if report.dry_run else ''}")
    for column in ("category", "keep (days)", "action", "past period", "changed", "error"):
        table.add_column(column)
    for rule in report.rules:
        table.add_row(rule.category, str(rule.days), rule.action, str(rule.found), str(rule.changed), rule.error or "")
    console.print(table)
    console.print(f"{report.found} item(s) past their period, {report.changed} changed")


def retention_run(*, dry_run: bool, adapter_spec: str) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    async def work(runtime: Any, adapter: ShopAdapter, audit: Any) -> int:
        runner = RetentionRunner(runtime.policy, adapter, audit=audit)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(highlight=False, soft_wrap=True),
        ) as progress:
            tasks: dict[str, Any] = {}

            def advance(rule: RuleOutcome, done: int, total: int) -> None:
                if rule.category not in tasks:
                    tasks[rule.category] = progress.add_task(rule.category, total=total)
                progress.update(tasks[rule.category], completed=total if dry_run else done, total=total)

            report = await runner.run(dry_run=dry_run, progress=advance)
        print_report(report)
        if not dry_run:  # the audit trail's own periods ([audit] raw_ip_days, event_days)
            trail = await runtime.audit_retention()
            console.print(
                f"audit trail: {trail.side_records_erased} raw-value record(s) erased,"
                f" {trail.events_purged} event body(ies) purged"
            )
        return 0 if report.ok else 1

    return asyncio.run(_with_runtime(adapter_spec, work))


def _run(args: argparse.Namespace) -> int:
    spec = args.adapter or os.environ.get(ADAPTER_ENV) or "none"
    try:
        if args.command == "retention":
            return retention_run(dry_run=args.dry_run, adapter_spec=spec)
        if args.dsar_command == "export":
            return dsar_export(args.subject, Path(args.out), adapter_spec=spec)
        return dsar_erase(args.subject, adapter_spec=spec, reason=args.reason)
    except PrivacyError as exc:
        console.print(f"[red]refused[/red]: {exc.message}")
        return 1


def add_rights_parsers(subparsers: Any) -> None:
    """`dsar export|erase` and `retention run` for the main command's parser."""
    adapter_help = f"shop adapter: 'none', 'sql', 'django', 'demo' or 'module:factory' (default ${ADAPTER_ENV} or none)"
    dsar = subparsers.add_parser("dsar", help="data-subject requests run by an operator").add_subparsers(
        dest="dsar_command", required=True
    )
    export = dsar.add_parser("export", help="write a subject's export (JSON, with data in clear) to a file")
    export.add_argument("subject")
    export.add_argument("--out", required=True)
    export.add_argument("--adapter", default=None, help=adapter_help)
    export.set_defaults(func=_run)
    erase = dsar.add_parser("erase", help="erase a subject (legal holds anonymise) and print the receipt")
    erase.add_argument("subject")
    erase.add_argument("--reason", default="operator_request")
    erase.add_argument("--adapter", default=None, help=adapter_help)
    erase.set_defaults(func=_run)
    retention = subparsers.add_parser("retention", help="apply the policy's retention rules").add_subparsers(
        dest="retention_command", required=True
    )
    run = retention.add_parser("run", help="delete or anonymise data past its retention period")
    run.add_argument("--dry-run", action="store_true", help="report what is past its period; change nothing")
    run.add_argument("--adapter", default=None, help=adapter_help)
    run.set_defaults(func=_run)
