"""Report-only mode: a step runs on a copy of the exchange, what it would have done is recorded,
and the original request and response pass unchanged.

Like a Content-Security-Policy-Report-Only header: a team switches a policy, a route or one
capability to `mode = "report"`, watches the "would have" events for a while
(`privacy-middleware report --since 1h`), and then enforces. Card numbers and CVVs are never let
through in clear in either mode: on a reported route the rules for them still run for real.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from ..audit import events
from ..audit.writer import AuditWriter
from ..errors import PrivacyError
from ..metrics import Metrics
from ..policy.compile import CompiledBody, CompiledFreeText, RouteSpec
from ..policy.schema import Capability, Mode, Policy
from ..services import Services
from .plan import Exchange, Respond, Step, StepFactory

# Categories that stay protected whatever the mode (PCI DSS: no PAN in clear, no stored CVV).
NEVER_IN_CLEAR = ("user.financial.card.number", "user.financial.card.cvv")
MAX_FIELDS = 50


def mode_for(policy: Policy, spec: RouteSpec, capability: Capability) -> Mode:
    """The route's own mode, else the capability's, else the policy's."""
    if spec.route is not None and spec.route.mode:
        return spec.route.mode
    return policy.policy.capability_modes.get(capability, policy.policy.mode)


def _never_in_clear(category: str) -> bool:
    return any(category == c or category.startswith(c + ".") for c in NEVER_IN_CLEAR)


def card_only(body: CompiledBody | None) -> CompiledBody | None:
    """The part of a body's rules that applies in every mode: card numbers and CVVs only, and
    nothing else touched (unknown keys kept, no personal objects to police)."""
    if body is None:
        return None
    fields = tuple(f for f in body.fields if _never_in_clear(f.rule.category) or f.rule.validate_as == "card_number")
    if not fields:
        return None
    rules = body.rules.model_copy(update={"unknown_fields": "keep", "personal_objects": []})
    return dataclasses.replace(body, rules=rules, fields=fields, personal_objects=())


def card_detection_only(rules: tuple[CompiledFreeText, ...]) -> tuple[CompiledFreeText, ...]:
    """Free-text rules reduced to card-number detection, which applies in every mode."""
    return tuple(
        dataclasses.replace(r, rule=r.rule.model_copy(update={"detect": ["card_number"]}))
        for r in rules
        if "card_number" in r.rule.detect
    )


def changed_paths(before: Any, after: Any, path: str = "$", found: list[str] | None = None) -> list[str]:
    """Where two JSON documents differ (paths only, never values), at most MAX_FIELDS of them."""
    found = [] if found is None else found
    if len(found) >= MAX_FIELDS:
        return found
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before.keys() | after.keys():
            child = f"{path}.{key}" if key.isidentifier() else f"{path}['{key}']"
            if key not in after or key not in before:
                found.append(child)
            else:
                changed_paths(before[key], after[key], child, found)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (left, right) in enumerate(zip(before, after, strict=True)):
            changed_paths(left, right, f"{path}[{index}]", found)
    elif before != after or type(before) is not type(after):
        found.append(path)
    return found


def _categories_present(body: CompiledBody, document: Any) -> Iterator[str]:
    for record in body.records.values(document) if not body.records.is_root else [document]:
        for compiled in body.fields:
            if next(compiled.selector.locations(record), None) is not None:
                yield compiled.rule.category


class ReportOnly(Step):
    """Runs `shadow` on a copy and records its decisions; `enforced` (card data only) runs for real."""

    def __init__(
        self,
        shadow: Step,
        enforced: Step | None,
        *,
        capability: Capability,
        spec: RouteSpec,
        metrics: Metrics,
        audit: AuditWriter,
    ) -> None:
        self.shadow = shadow
        self.enforced = enforced
        self.capability = capability
        self.route = f"{spec.method} {spec.template}"
        self.body = spec.response if capability == "response_fields" else spec.request
        self.metrics = metrics
        self.audit = audit
        for flag in (
            "needs_request_json",
            "needs_request_body",
            "needs_response_json",
            "peeks_response_json",
            "needs_response_start",
        ):
            setattr(self, flag, any(getattr(s, flag) for s in (shadow, enforced) if s is not None))

    def record(self, decision: str, ex: Exchange, *, code: str = "", fields: list[str] | None = None) -> None:
        self.metrics.would_have.labels(self.capability, decision).inc()
        principal = ex.ctx.principal
        self.audit.emit(
            events.would_have(
                capability=self.capability,
                decision=decision,
                route=self.route,
                code=code or None,
                fields=fields or [],
                recipient=principal.recipient if principal else None,
                principal=principal.id if principal else None,
                ip=ex.ctx.client_ip,
            )
        )

    def _copy(self, ex: Exchange, **changes: Any) -> Exchange:
        scope = dict(ex.scope)
        scope["headers"] = list(ex.scope.get("headers") or [])
        return dataclasses.replace(ex, scope=scope, extra_headers=[], **changes)

    async def _run(self, hook: Callable[[Exchange], Any], shadow: Exchange) -> bool:
        """True if the hook refused; the refusal is recorded, never raised."""
        refusals = shadow.ctx.facts.refusals
        seen = len(refusals)
        try:
            await hook(shadow)
        except Respond as answered:
            self.record("block", shadow, code=f"status_{answered.status}")
            return True
        except PrivacyError as refused:
            field = refused.extra.get("field")
            self.record("refuse", shadow, code=refused.code, fields=[str(field)] if field else [])
            return True
        finally:
            del refusals[seen:]  # nothing was refused for real: the refusal audit must not say so
        return False

    async def before(self, ex: Exchange) -> None:
        if self.enforced is not None:
            await self.enforced.before(ex)
        await self._run(self.shadow.before, self._copy(ex))

    async def on_request(self, ex: Exchange) -> None:
        shadow = self._copy(ex, request_json=copy.deepcopy(ex.request_json), request_changed=False)
        if not await self._run(self.shadow.on_request, shadow) and shadow.request_changed:
            paths = changed_paths(ex.request_json, shadow.request_json)
            if paths:
                self.record("rewrite_request", ex, fields=paths)
        if self.enforced is not None:
            await self.enforced.on_request(ex)

    async def on_response(self, ex: Exchange) -> None:
        facts = ex.ctx.facts
        shadow = self._copy(ex, response_json=copy.deepcopy(ex.response_json), response_changed=False)
        if not await self._run(self.shadow.on_response, shadow) and shadow.response_changed:
            paths = changed_paths(ex.response_json, shadow.response_json)
            if paths:
                self.record("rewrite_response", ex, fields=paths)
        disclosure = facts.disclosure
        if self.enforced is not None:
            await self.enforced.on_response(ex)
        # The access log records what really left: every category the unfiltered response held.
        if disclosure is not None and self.body is not None and ex.response_has_json:
            disclosure.report.categories.update(_categories_present(self.body, ex.response_json))
            facts.disclosure = disclosure

    async def after(self, ex: Exchange) -> None:
        await self.shadow.after(ex)


# The capability each named step belongs to; steps not listed (audit, account events) always run.
# Breach containment is deliberately not listed: a suspension is incident response, not a policy
# being rolled out, and it protects card data as much as anything else, so it is never report-only.
STEP_CAPABILITIES: dict[str, Capability] = {
    "login": "lockout",
    "tracking": "tracking",
    "minimum_age": "minimisation",
    "forbidden_category": "minimisation",
    "free_text": "free_text",
    "protect_request": "request_fields",
    "disclose_response": "response_fields",
}


def governed(name: str, factory: StepFactory, services: Services) -> StepFactory:
    """The step factory, wrapped so its steps carry their name and a route in report mode gets a
    ReportOnly step."""
    capability = STEP_CAPABILITIES.get(name)
    policy = services.policy

    def build(spec: RouteSpec) -> Step | None:
        step = factory(spec)
        if step is not None:
            step.name = name
        if step is None or capability is None or mode_for(policy, spec, capability) == "enforce":
            return step
        enforced: Step | None = None
        if capability == "request_fields" and (body := card_only(spec.request)) is not None:
            enforced = factory(dataclasses.replace(spec, request=body))
        elif capability == "response_fields" and (body := card_only(spec.response)) is not None:
            enforced = factory(dataclasses.replace(spec, response=body))
        elif capability == "free_text" and (rules := card_detection_only(spec.free_text)):
            enforced = factory(dataclasses.replace(spec, free_text=rules))
        reporting = ReportOnly(
            step, enforced, capability=capability, spec=spec, metrics=services.metrics, audit=services.audit
        )
        reporting.name = name
        return reporting

    return build
