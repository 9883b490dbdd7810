"""CLI commands for adopting the middleware safely: `policy draft` and `report`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from .errors import ConfigError

GRAPHQL_INTROSPECTION = (
    "query { __schema { queryType { name } mutationType { name } types { kind name "
    "fields { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } "
    "inputFields { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }"
)


def _read_document(source: str, *, graphql: bool) -> dict[str, Any]:
    """A local file, or a URL fetched once (GraphQL: the standard introspection query)."""
    if source.startswith(("http://", "https://")):
        try:
            if graphql:
                response = httpx.post(source, json={"query": GRAPHQL_INTROSPECTION}, timeout=30)
            else:
                response = httpx.get(source, timeout=30, follow_redirects=False)
            response.raise_for_status()
            document = orjson.loads(response.content)
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"could not read {source}: {exc.__class__.__name__}") from exc
    else:
        path = Path(source)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"could not read {source}: {exc.strerror}") from exc
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            import yaml  # OpenAPI documents are often YAML

            try:
                document = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{source} is neither JSON nor YAML") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{source} does not hold a JSON object")
    return document


def _load_app(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise ConfigError(f"--app takes module:attribute, not {target!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        app = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"could not load {target}: {exc}") from exc
    return app


def cmd_policy_draft(args: argparse.Namespace) -> int:
    from .policy.draft import Draft, add_example, coverage, from_app, from_graphql, from_openapi, render

    draft: Draft
    if args.openapi:
        draft = from_openapi(_read_document(args.openapi, graphql=False), args.name)
    elif args.graphql:
        draft = from_graphql(_read_document(args.graphql, graphql=True), args.graphql_path, args.name)
    elif args.app:
        draft = from_app(_load_app(args.app), args.name)
    else:
        draft = Draft(args.name or "My shop", "example payloads")
    for example in args.example or []:
        route, _, payload_file = example.partition("=")
        method, _, path = route.strip().partition(" ")
        side, _, file_name = payload_file.partition(":")
        if side not in {"request", "response"} or not path.startswith("/"):
            raise ConfigError(f"--example takes 'METHOD /path=request:FILE' or '...=response:FILE', not {example!r}")
        try:
            payload = orjson.loads(Path(file_name).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"could not read the example {file_name}: {exc.__class__.__name__}") from exc
        add_example(draft, method.upper(), path.strip(), side, payload)
    text = render(draft)
    if args.out:
        out = Path(args.out)
        if out.exists() and not args.force:
            raise ConfigError(f"{out} exists; choose another file or pass --force")
        out.write_text(text)
        print(f"wrote a draft policy to {out}: {len(draft.routes)} routes, {len(draft.undecided)} to decide")
    else:
        sys.stdout.write(text)
    if args.against:
        from .policy.load import load_policy

        measured = coverage(draft, load_policy(args.against))
        print(
            f"found {measured.found} of {measured.declared} protected fields of {args.against} ({measured.share:.0%})",
            file=sys.stderr,
        )
        for missed in measured.missed:
            print(f"  missed {missed}", file=sys.stderr)
    return 0


def add_policy_draft_parser(policy: Any) -> None:
    draft = policy.add_parser(
        "draft",
        help="write a commented draft policy from the shop's OpenAPI, GraphQL schema, routes or examples",
    )
    source = draft.add_mutually_exclusive_group()
    source.add_argument("--openapi", metavar="FILE|URL", help="an OpenAPI 3 document (JSON or YAML)")
    source.add_argument("--graphql", metavar="FILE|URL", help="a GraphQL introspection result, or the endpoint")
    source.add_argument("--app", metavar="module:attr", help="an in-process Starlette or FastAPI app")
    draft.add_argument("--graphql-path", default="/graphql", help="the shop's GraphQL route (with --graphql)")
    draft.add_argument(
        "--example",
        action="append",
        metavar="'METHOD /path=request|response:FILE'",
        help="a recorded body of a route (repeatable)",
    )
    draft.add_argument("--name", default="", help="the shop's name in the draft")
    draft.add_argument("--out", help="write the draft here (never over an existing file without --force)")
    draft.add_argument("--force", action="store_true")
    draft.add_argument("--against", metavar="POLICY", help="print the share of that policy's protected fields found")
    draft.set_defaults(func=cmd_policy_draft)


DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(value: str) -> datetime:
    """`90m`, `1h`, `7d` ago, or an ISO 8601 time."""
    match = DURATION_RE.match(value.strip())
    if match:
        return datetime.now(UTC) - timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"--since takes a duration such as 1h or 7d, or an ISO time, not {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def summarise_would_have(database_url: str, since: datetime) -> list[dict[str, Any]]:
    """Would-have events since `since`, grouped by route, capability, decision and code."""
    from .audit.query import MAX_LIMIT, search
    from .store import Database

    database = Database(database_url)
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    try:
        await database.check()
        after: int | None = None
        while True:
            records = await search(
                database, kinds=["api_activity.would_have"], since=since, after_seq=after, limit=MAX_LIMIT
            )
            for record in records:
                detail = record.detail
                key = (
                    str(detail.get("route", "")),
                    str(detail.get("capability", "")),
                    str(detail.get("decision", "")),
                    str(detail.get("code") or ""),
                )
                group = groups.setdefault(
                    key, {"count": 0, "fields": Counter(), "recipients": Counter(), "last": record.time}
                )
                group["count"] += 1
                group["fields"].update(detail.get("fields", []))
                if detail.get("recipient"):
                    group["recipients"].update([detail["recipient"]])
                group["last"] = max(group["last"], record.time)
            if len(records) < MAX_LIMIT:
                break
            after = records[-1].seq
    finally:
        await database.dispose()
    rows = []
    for (route, capability, decision, code), group in sorted(groups.items(), key=lambda item: -item[1]["count"]):
        rows.append(
            {
                "route": route,
                "capability": capability,
                "decision": decision,
                "code": code or None,
                "count": group["count"],
                "fields": [name for name, _ in group["fields"].most_common(20)],
                "recipients": sorted(group["recipients"]),
                "last": group["last"].isoformat(),
            }
        )
    return rows


def cmd_report(args: argparse.Namespace) -> int:
    from .settings import Settings

    since = parse_since(args.since)
    rows = asyncio.run(summarise_would_have(Settings().database_url, since))
    if args.json:
        sys.stdout.write(orjson.dumps({"since": since.isoformat(), "changes": rows}).decode() + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    if not rows:
        console.print(f"nothing would change since {since.isoformat(timespec='seconds')}: no report-mode decisions")
        return 0
    table = Table(title=f"What enforcing would change (since {since.isoformat(timespec='seconds')})")
    for column in ("route", "capability", "decision", "code", "count", "fields", "recipients"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["route"],
            row["capability"],
            row["decision"],
            row["code"] or "",
            str(row["count"]),
            ", ".join(row["fields"][:6]) + (" ..." if len(row["fields"]) > 6 else ""),
            ", ".join(row["recipients"]),
        )
    console.print(table)
    return 0


def add_report_parser(sub: Any) -> None:
    report = sub.add_parser(
        "report",
        help="what switching report-mode routes to enforce would change, by route and reason (PRIVACY_DATABASE_URL)",
    )
    report.add_argument("--since", default="24h", help="a duration (90m, 1h, 7d) or an ISO time; default 24h")
    report.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    report.set_defaults(func=cmd_report)


def _shape(file: str | None) -> Any:
    if file is None:
        return None
    try:
        return orjson.loads(Path(file).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"could not read the shape {file}: {exc.__class__.__name__}") from exc


def trace_lines(route: str, result: dict[str, Any]) -> list[str]:
    """The trace as lines a person reads (the --json output is the trace document itself)."""
    trace = result["trace"]
    if trace is None:
        return [f"{route}: no plan matches; the request would reach the shop untouched ({result['status']})"]
    where = trace["route"]
    lines = [
        f"{route}: answered {result['status']}; plan {where['method']} {where['template']} ({where['matched']}),"
        f" recipient {where['recipient']}, purpose {where['purpose'] or '-'}"
    ]
    for step in trace["steps"]:
        code = f" {step['code']}" if step.get("code") else ""
        field = f" at {step['field']}" if step.get("field") else ""
        lines.append(
            f"  {step['step']:<20} {step['hook']:<12} {step['decision']}{code}{field}"
            f"  [{step['mode']}; {step['policy_key'] or '-'}]"
        )
    for field_view in trace.get("fields", []):
        lines.append(
            f"  {field_view['direction']:<9} {field_view['select']:<32} {field_view['transform']:<16} "
            f"{field_view['reason']}"
        )
    return lines


def cmd_policy_trace(args: argparse.Namespace) -> int:
    from .commands.base import Output
    from .policy.load import load_policy
    from .replay import replay_sync
    from .settings import Settings

    file = args.file if args.file is not None else str(Settings().policy_file)
    result = replay_sync(
        load_policy(file),
        args.request,
        header_names=args.header or [],
        body_shape=_shape(args.body),
        response_shape=_shape(args.response),
        recipient=args.recipient,
        purpose=args.purpose,
        status=args.status,
    )
    Output.of(args).result(result, trace_lines(args.request, result))
    return 0


def add_policy_trace_parser(policy: Any) -> None:
    trace = policy.add_parser(
        "trace",
        help="replay a request shape (no values) through the middleware and print its decision trace",
    )
    trace.add_argument("file", nargs="?", default=None, help="the policy (default: PRIVACY_POLICY_FILE)")
    trace.add_argument("--request", required=True, metavar="'METHOD /path'", help="e.g. 'POST /checkout'")
    trace.add_argument("--header", action="append", metavar="NAME", help="a header the request carried (repeatable)")
    trace.add_argument("--body", metavar="SHAPE.json", help="the request body's shape (its values are not used)")
    trace.add_argument("--response", metavar="SHAPE.json", help="the shop's response shape (values not used)")
    trace.add_argument("--recipient", help="the caller's recipient (default: a customer, with --header authorization)")
    trace.add_argument("--purpose", help="the caller's purpose claim")
    trace.add_argument("--status", type=int, default=200, help="the stand-in shop's status (default 200)")
    trace.set_defaults(func=cmd_policy_trace)
