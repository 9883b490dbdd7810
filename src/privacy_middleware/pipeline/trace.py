"""A decision trace: why a request was handled the way it was, for a privacy officer, never a value.

A request that carries `Privacy-Trace: <officer token>` (a token with the policy's admin scope) is
served as usual, and its answer carries a `Privacy-Trace` header: base64url JSON saying which plan
matched and why, each step's decision with its reason code and the policy key behind it, and each
field's transform. The field views come from `policy.explain`, the same code `policy explain` runs.
A trace is itself audited (an admin read).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from ..audit import events
from ..errors import PrivacyError
from ..policy.compile import RouteSpec
from ..policy.explain import FieldView, explain, request_views
from ..policy.schema import Policy
from .plan import Exchange, Respond, RoutePlan, Step
from .report import STEP_CAPABILITIES, mode_for

TRACE_HEADER = b"privacy-trace"
# Header values beyond this are cut down to the route and the steps (fields are listed by `policy explain`).
MAX_HEADER_BYTES = 12_000
HOOKS = ("before", "on_request", "on_response")


def _view(view: FieldView, direction: str) -> dict[str, str]:
    return {
        "direction": direction,
        "select": view.select,
        "category": view.category,
        "transform": view.transform,
        "reason": view.reason,
    }


def step_policy_key(policy: Policy, spec: RouteSpec, name: str) -> str:
    """The policy key that put this step on this route."""
    route_index = next((i for i, r in enumerate(policy.routes) if r is spec.route), None)
    where: dict[str, tuple[str, object, Sequence[object]]] = {
        "login": ("audit.logins", spec.login, policy.audit.logins),
        "account": ("audit.account_routes", spec.account, policy.audit.account_routes),
        "tracking": ("tracking.routes", spec.tracking, policy.tracking.routes),
        "minimum_age": ("minors.routes", spec.minors, policy.minors.routes),
    }
    if name in where:
        prefix, item, items = where[name]
        index = next((i for i, candidate in enumerate(items) if candidate is item), None)
        return f"{prefix}[{index}]" if index is not None else prefix
    if route_index is None:
        return "categories" if name == "forbidden_category" else ""
    side = {"protect_request": "request", "disclose_response": "response", "free_text": "free_text"}.get(name, "")
    if name == "forbidden_category":
        return f"routes[{route_index}].request + categories.*.forbidden"
    return f"routes[{route_index}].{side}" if side else f"routes[{route_index}]"


@dataclasses.dataclass(slots=True)
class Trace:
    route: dict[str, Any]
    steps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    fields: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def header(self) -> tuple[bytes, bytes]:
        document: dict[str, Any] = {"route": self.route, "steps": self.steps, "fields": self.fields}
        raw = orjson.dumps(document)
        if len(raw) * 4 // 3 > MAX_HEADER_BYTES:
            document = {"route": self.route, "steps": self.steps, "fields_truncated": len(self.fields)}
            raw = orjson.dumps(document)
        return TRACE_HEADER, base64.urlsafe_b64encode(raw).rstrip(b"=")


def read_trace(value: bytes | str) -> dict[str, Any]:
    """Decode a `Privacy-Trace` response header (for tests, tools and people)."""
    text = value.decode("ascii") if isinstance(value, bytes) else value
    return dict(orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))


class TracedStep(Step):
    """Records what the wrapped step decided in each hook it implements."""

    def __init__(self, inner: Step, trace: Trace, entry: dict[str, Any]) -> None:
        self.inner = inner
        self.trace = trace
        self.entry = entry
        for flag in (
            "needs_request_json",
            "needs_request_body",
            "needs_response_json",
            "peeks_response_json",
            "needs_response_start",
        ):
            setattr(self, flag, getattr(inner, flag))

    async def _hook(self, hook: str, call: Callable[[Exchange], Awaitable[None]], ex: Exchange) -> None:
        if getattr(type(self.inner), hook) is getattr(Step, hook):
            return
        # Each step's own change: cleared before it runs, merged back after (an earlier step's
        # rewrite must not hide this one's).
        changed = (ex.request_changed, ex.response_changed)
        ex.request_changed = ex.response_changed = False
        try:
            await call(ex)
        except PrivacyError as refused:
            self._record(hook, "refused", refused.code, refused.extra.get("field"))
            name, value = self.trace.header()
            refused.headers[name.decode()] = value.decode()
            raise
        except Respond as answered:
            self._record(hook, "answered", f"status_{answered.status}")
            answered.headers.append(self.trace.header())
            raise
        now = (ex.request_changed, ex.response_changed)
        ex.request_changed = changed[0] or now[0]
        ex.response_changed = changed[1] or now[1]
        self._record(hook, "rewrote" if any(now) else "passed")

    def _record(self, hook: str, decision: str, code: str | None = None, field: Any = None) -> None:
        record = {**self.entry, "hook": hook, "decision": decision}
        if code:
            record["code"] = code
        if field:
            record["field"] = str(field)
        self.trace.steps.append(record)

    async def before(self, ex: Exchange) -> None:
        await self._hook("before", self.inner.before, ex)

    async def on_request(self, ex: Exchange) -> None:
        await self._hook("on_request", self.inner.on_request, ex)

    async def on_response(self, ex: Exchange) -> None:
        await self._hook("on_response", self.inner.on_response, ex)

    async def after(self, ex: Exchange) -> None:
        await self.inner.after(ex)


class TraceHeader(Step):
    """Last step: the trace leaves with the response headers."""

    needs_response_start = True

    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    async def on_response(self, ex: Exchange) -> None:
        ex.extra_headers.append(self.trace.header())


class Tracer:
    """Turns a plan into a traced plan for one request, after checking the officer's token."""

    def __init__(
        self,
        policy: Policy,
        authenticate: Callable[[bytes | None], Awaitable[Any]],
        emit: Callable[[events.AuditEvent], None],
    ) -> None:
        self.policy = policy
        self.authenticate = authenticate
        self.emit = emit

    async def traced(self, plan: RoutePlan, ex: Exchange, token: bytes) -> RoutePlan:
        officer = await self.authenticate(b"Bearer " + token.strip())
        if officer is None or not officer.has_scope(self.policy.audit.admin_scope):
            raise PrivacyError(
                "trace_forbidden",
                f"A decision trace needs a token with the {self.policy.audit.admin_scope!r} scope.",
                403,
            )
        spec = plan.spec
        principal = ex.ctx.principal
        identity = self.policy.identity
        recipient = identity.anonymous_recipient if principal is None else principal.recipient
        trace = Trace(
            route={
                "method": spec.method,
                "template": spec.template,
                "matched": "path template" if "{" in spec.template else "exact path",
                "parameters": sorted(ex.ctx.path_params),
                "recipient": recipient,
                "purpose": principal.purpose if principal else None,
            }
        )
        trace.fields.extend(_view(v, "request") for v in request_views(self.policy, spec))
        if spec.response is not None:
            trace.fields.extend(
                _view(v, "response") for v in explain(self.policy, recipient, f"{spec.method} {spec.template}")
            )
        steps: list[Step] = []
        for step in plan.steps:
            name = getattr(step, "name", "") or type(step).__name__
            capability = STEP_CAPABILITIES.get(name)
            entry = {
                "step": name,
                "capability": capability,
                "mode": mode_for(self.policy, spec, capability) if capability else "enforce",
                "policy_key": step_policy_key(self.policy, spec, name),
            }
            steps.append(TracedStep(step, trace, entry))
        steps.append(TraceHeader(trace))
        self.emit(
            events.admin_read(
                principal=officer.id,
                query={"trace": f"{spec.method} {spec.template}"},
                result_count=len(trace.fields),
            )
        )
        return dataclasses.replace(plan, steps=tuple(steps), needs_response_start=True, has_before=True)
