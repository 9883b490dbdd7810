"""`policy explain` and `policy check --example`: what a recipient would see, and selectors that
match nothing in a real payload. Both reuse the compiled route table and the field engine's rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..fields.engine import Viewer
from .compile import CompiledBody, compile_policy
from .schema import Policy


@dataclass(frozen=True, slots=True)
class FieldView:
    select: str
    category: str
    transform: str
    reason: str


def find_route(policy: Policy, route: str) -> tuple[str, str, CompiledBody | None]:
    method, _, path = route.strip().partition(" ")
    table = compile_policy(policy)
    for spec in table.entries():
        if spec.method == method.upper() and spec.template == path.strip():
            return spec.method, spec.template, spec.response
    found = table.match(method.upper(), path.strip())
    if found is None:
        raise KeyError(f"no route {route!r} in the policy")
    spec = found[0]
    return spec.method, spec.template, spec.response


def explain(policy: Policy, recipient: str, route: str) -> list[FieldView]:
    """Field by field, what `recipient` receives from the route's response, and why."""
    _, _, body = find_route(policy, route)
    if body is None:
        return []
    declared = policy.recipients.get(recipient)
    viewer = Viewer(None, recipient, dict(declared.sees) if declared else {})
    views = []
    for rule in body.fields:
        transform, granted = viewer.grant_for(rule.rule.category)
        if declared is None:
            reason = f"{recipient!r} is not a declared recipient: it sees no personal data"
        elif granted is None:
            reason = f"not granted in recipients.{recipient}.sees: dropped (default deny)"
        else:
            reason = f'granted by recipients.{recipient}.sees["{granted}"] = "{transform}"'
        views.append(FieldView(rule.rule.select, rule.rule.category, transform, reason))
    return views


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
