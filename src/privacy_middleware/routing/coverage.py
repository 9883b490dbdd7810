"""`privacy-middleware policy coverage --app module:attr`: every route of the app, whether a plan
covers it, and which other spellings reach a planned handler (and whether the plan reaches them too).

The same check runs when the middleware is built: a planned route with an alias the plan does not
reach is an error under PRIVACY_ENV=production and a warning otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, PrivacyError
from ..policy.compile import RouteSpec, compile_policy
from ..policy.schema import Policy
from .canonical import AliasTable
from .identity import (
    DjangoIdentity,
    RouteIdentity,
    StarletteIdentity,
    _is_django,
    _probe,
    _starlette_dispatch,
    _starlette_routes,
    handler_id,
    identity_for,
    sample_paths,
    unwrap,
)

logger = logging.getLogger("privacy_middleware")
ALIAS_SUFFIXES = ("/", ".json", ".api", ".xml", ";x=1")
REFUSED = "refused"  # what a spelling the middleware answers 400 is placed on


@dataclass(frozen=True, slots=True)
class Planned:
    """A policy route as the identity sees it (anything with a `.spec`)."""

    spec: RouteSpec

    @property
    def label(self) -> str:
        return f"{self.spec.method} {self.spec.template}"


@dataclass(slots=True)
class AppRoute:
    methods: list[str]
    path: str
    handler: str
    planned: list[str] = field(default_factory=list)  # plans whose handler this route runs


@dataclass(slots=True)
class Coverage:
    router: str
    routes: list[AppRoute]
    # plan label -> spellings that reach its handler: (spelling, covered by the plan)
    aliases: dict[str, list[tuple[str, bool]]]
    missing: list[str]  # planned routes the app's router does not know

    @property
    def uncovered(self) -> dict[str, list[str]]:
        return {
            label: [spelling for spelling, covered in spellings if not covered]
            for label, spellings in self.aliases.items()
            if any(not covered for _, covered in spellings)
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "router": self.router,
            "routes": [
                {"methods": r.methods, "path": r.path, "handler": r.handler, "planned": r.planned} for r in self.routes
            ],
            "aliases": {k: [{"path": p, "covered": c} for p, c in v] for k, v in self.aliases.items()},
            "missing": self.missing,
            "uncovered": self.uncovered,
        }


def _name(obj: Any) -> str:
    target = getattr(obj, "cls", None) or getattr(obj, "endpoint", None) or obj
    module = getattr(target, "__module__", "") or ""
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{qualname}".lstrip(".")


def _starlette_table(routes: list[Any], prefix: str = "") -> Iterator[tuple[list[str], str, Any]]:
    from starlette.routing import Mount, Route

    for route in routes:
        if isinstance(route, Mount):
            inner = _starlette_routes(route.app) or []
            yield from _starlette_table(inner, prefix + route.path)
        elif isinstance(route, Route):
            yield sorted(route.methods or ["*"]), prefix + route.path, route


def _django_table(patterns: list[Any], prefix: str = "") -> Iterator[tuple[list[str], str, Any]]:
    from django.urls import URLPattern, URLResolver

    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _django_table(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            callback = pattern.callback
            actions = getattr(callback, "actions", None)
            if isinstance(actions, dict):
                methods = sorted(m.upper() for m in actions)
            else:
                cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
                names = getattr(cls, "http_method_names", None) or []
                methods = sorted(m.upper() for m in names if hasattr(cls, m) and m != "options") or ["*"]
            yield methods, "/" + prefix + str(pattern.pattern), callback


def _reaches(identity: RouteIdentity[Planned], method: str, path: str) -> Any:
    """The handler the app's router sends a spelling to (None when unknown or none)."""
    if isinstance(identity, StarletteIdentity):
        found = _starlette_dispatch(identity.routes, _probe(method, path))
        return None if found is None else handler_id(found[0][-1])
    if isinstance(identity, DjangoIdentity):
        resolved = identity.resolve(path)
        return None if resolved is None else resolved[0]
    return None


def _place(identity: RouteIdentity[Planned], method: str, spelling: str) -> tuple[Any, Any] | None:
    """The plan a spelling gets; a spelling the middleware refuses (400) counts as covered."""
    try:
        return identity.place(_probe(method, spelling))
    except PrivacyError:
        return (REFUSED, {})


def coverage(app: Any, policy: Policy) -> Coverage:
    table = compile_policy(policy)
    plans = [Planned(spec) for spec in table.entries()]
    identity = identity_for(app, plans, lambda: AliasTable((p.spec.method, p.spec.template, p) for p in plans))
    inner = unwrap(app)
    rows: list[AppRoute] = []
    aliases: dict[str, list[tuple[str, bool]]] = {}
    missing: list[str] = []
    if isinstance(identity, StarletteIdentity | DjangoIdentity):
        identity.place(_probe("GET", "/"))  # builds the handler index once
        handlers: dict[tuple[Any, str], Planned] = identity.handlers
        missing = [plan.label for plan in identity.unmatched]
        if _is_django(inner):
            from django.urls import get_resolver

            entries = list(_django_table(get_resolver().url_patterns))
        else:
            entries = list(_starlette_table(_starlette_routes(inner) or []))
        for methods, path, handler in entries:
            planned = [
                handlers[(key, m)].label
                for m in (methods if methods != ["*"] else ["GET", "POST", "PUT", "PATCH", "DELETE"])
                if (key := handler_id(handler) if isinstance(identity, StarletteIdentity) else id(handler), m)
                in handlers
            ]
            rows.append(AppRoute(methods, path, _name(handler), planned))
        for plan in plans:
            if plan.label in missing:
                continue
            spec = plan.spec
            base = next(iter(sample_paths(spec.template)))
            target = _reaches(identity, spec.method, base)
            for spelling in _spellings(base):
                reached = _reaches(identity, spec.method, spelling)
                if reached is None or (target is not None and reached != target):
                    continue
                placed = table.match(spec.method, spelling) or _place(identity, spec.method, spelling)
                covered = placed is not None and placed[0] is not None
                aliases.setdefault(plan.label, []).append((spelling, covered))
    else:
        for plan in plans:
            base = next(iter(sample_paths(plan.spec.template)))
            for spelling in _spellings(base):
                found = table.match(plan.spec.method, spelling)
                covered = found is not None and found[0] is plan.spec
                if not covered:
                    placed = _place(identity, plan.spec.method, spelling)
                    covered = placed is not None and (placed[0] is plan or placed[0] is REFUSED)
                aliases.setdefault(plan.label, []).append((spelling, covered))
    return Coverage(identity.kind, rows, aliases, missing)


def _spellings(base: str) -> list[str]:
    out = [base + suffix for suffix in ALIAS_SUFFIXES]
    out += [base.rstrip("/") + suffix for suffix in (".json", ".json/")] if base.endswith("/") else []
    out += [base.upper(), "/" + base]
    return [s for s in dict.fromkeys(out) if s != base]


def check_at_start(app: Any, policy: Policy) -> None:
    """Uncovered aliases of planned routes: an error in production, a warning otherwise."""
    try:
        report = coverage(app, policy)
    except ConfigError:
        raise
    except Exception as exc:  # an app whose router cannot be read: say so, never block on it
        logger.warning("route coverage not checked: %s", type(exc).__name__)
        return
    for label in report.missing:
        logger.warning(
            "planned route %s is not a route of the app (checked through its %s router)", label, report.router
        )
    uncovered = report.uncovered
    if not uncovered:
        return
    detail = "; ".join(f"{label}: {', '.join(paths)}" for label, paths in uncovered.items())
    message = f"planned routes reachable through spellings the plan does not cover: {detail}"
    if os.environ.get("PRIVACY_ENV", "").lower() == "production":
        raise ConfigError(message)
    logger.warning("%s", message)


def load_app(reference: str) -> Any:
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ConfigError("--app must be module:attribute")
    sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--app: cannot import {module_name}: {exc}") from None
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"--app: {module_name} has no {attr}")
    # A zero-argument factory function (not an ASGI app, which takes scope, receive, send).
    if inspect.isfunction(target) and not inspect.signature(target).parameters:
        target = target()
    return target


def cmd_policy_coverage(args: argparse.Namespace) -> int:
    from ..policy.load import load_policy

    app = load_app(args.app)
    runtime = getattr(app, "runtime", None)
    if runtime is not None and getattr(app, "app", None) is not None:  # the middleware around the app
        policy, inner = runtime.policy, app.app
    else:
        from ..settings import Settings

        policy, inner = load_policy(args.file or Settings().policy_file), app
    report = coverage(inner, policy)
    if args.json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(f"router: {report.router}\n")
        for route in report.routes:
            plan = ", ".join(route.planned) if route.planned else "-"
            sys.stdout.write(f"{','.join(route.methods):<18} {route.path:<50} planned: {plan}\n")
        for label, spellings in report.aliases.items():
            for spelling, covered in spellings:
                sys.stdout.write(f"alias of {label}: {spelling} ({'covered' if covered else 'NOT COVERED'})\n")
        for label in report.missing:
            sys.stdout.write(f"planned but not a route of the app: {label}\n")
    return 1 if report.uncovered else 0


def add_coverage_parser(policy_commands: Any) -> None:
    parser = policy_commands.add_parser(
        "coverage", help="list the app's routes, which a plan covers, and aliases that reach planned handlers"
    )
    parser.add_argument("--app", required=True, help="module:attribute of the ASGI app (or the wrapped middleware)")
    parser.add_argument("--file", help="policy file (default: PRIVACY_POLICY_FILE)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=cmd_policy_coverage)
