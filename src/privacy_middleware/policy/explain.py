"""`policy explain` and `policy check --example`: what a recipient would see, and selectors that
match nothing in a real payload. Both reuse the compiled route table; what a recipient sees comes
from the one access decision (access.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .access import Access
from .compile import CompiledBody, RouteSpec, compile_policy
from .schema import Policy, Route


@dataclass(frozen=True, slots=True)
class FieldView:
    select: str
    category: str
    transform: str
    reason: str


def find_spec(policy: Policy, route: str) -> RouteSpec:
    """The compiled route for 'METHOD /path' (a template or a concrete path)."""
    method, _, path = route.strip().partition(" ")
    table = compile_policy(policy)
    for spec in table.entries():
        if spec.method == method.upper() and spec.template == path.strip():
            return spec
    found = table.match(method.upper(), path.strip())
    if found is None:
        raise KeyError(f"no route {route!r} in the policy")
    return found[0]


def find_route(policy: Policy, route: str) -> tuple[str, str, CompiledBody | None]:
    spec = find_spec(policy, route)
    return spec.method, spec.template, spec.response


def explain(policy: Policy, recipient: str, route: str) -> list[FieldView]:
    """Field by field, what `recipient` receives from the route's response, and why."""
    _, _, body = find_route(policy, route)
    if body is None:
        return []
    access = Access(policy)
    views = []
    for rule in body.fields:
        answer = access.explain(recipient, rule.rule.category)
        transform, reason = answer.transform, answer.reason
        views.append(FieldView(rule.rule.select, rule.rule.category, transform, reason))
    return views


def rule_keys(policy: Policy, route: Route | None, side: str) -> dict[str, str]:
    """selector -> the policy key that declares it (`routes[2].request.fields[0]` or `shapes.order.fields[3]`)."""
    if route is None:
        return {}
    body = getattr(route, side)
    if body is None:
        return {}
    index = next(i for i, r in enumerate(policy.routes) if r is route)
    keys: dict[str, str] = {}
    if body.shape:
        for j, rule in enumerate(policy.shapes[body.shape].fields):
            keys[rule.select] = f"shapes.{body.shape}.fields[{j}]"
    for j, rule in enumerate(body.fields):
        keys[rule.select] = f"routes[{index}].{side}.fields[{j}]"
    return keys


def request_views(policy: Policy, spec: RouteSpec) -> list[FieldView]:
    """Field by field, what the way in does to the route's request body before the shop sees it."""
    if spec.request is None:
        return []
    keys = rule_keys(policy, spec.route, "request")
    return [
        FieldView(
            f.rule.select,
            f.rule.category,
            f.rule.transform,
            f"{keys.get(f.rule.select, 'routes')}: transform = {f.rule.transform!r}"
            + (f", validated as {f.rule.validate_as}" if f.rule.validate_as else ""),
        )
        for f in spec.request.fields
    ]


def unmatched_selectors(policy: Policy, route: str, payload: Any) -> list[str]:
    """Selectors of the route's response rules that find nothing in an example payload."""
    _, _, body = find_route(policy, route)
    if body is None:
        return []
    root = payload.get("data") if body.rules.graphql and isinstance(payload, dict) else payload
    records = list(body.records.values(root))
    if not records:
        return [body.rules.records]
    missing = []
    for rule in body.fields:
        if not any(any(True for _ in rule.selector.locations(record)) for record in records):
            missing.append(rule.rule.select)
    for selector in body.personal_objects:
        if not any(any(True for _ in selector.values(record)) for record in records):
            missing.append(selector.source)
    return missing
