"""Field steps: request field protection and response disclosure, both through the field engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fields.engine import FieldEngine, Viewer
from ..pipeline import Exchange, Step, StepFactory
from ..policy.compile import CompiledBody, RouteSpec

if TYPE_CHECKING:
    from ..runtime import Runtime


class ProtectRequestFields(Step):
    """Validate, strip, encrypt or tokenise classified fields before the shop sees them."""

    needs_request_json = True

    def __init__(self, body: CompiledBody, engine: FieldEngine, runtime: Runtime) -> None:
        self.body = body
        self.engine = engine
        self.runtime = runtime

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        report = await self.engine.protect_request(self.body, ex.request_json, ex.ctx.principal)
        if report.transformed:
            ex.request_changed = True
            for transform, count in report.transformed.items():
                self.runtime.metrics.fields.labels("request", transform).inc(count)
        ex.ctx.notes.setdefault("request_categories", set()).update(report.categories)


class DiscloseResponseFields(Step):
    """Let out only what the caller's recipient may see, per category; drop the rest."""

    needs_response_json = True

    def __init__(self, spec: RouteSpec, body: CompiledBody, engine: FieldEngine, runtime: Runtime) -> None:
        self.label = f"{spec.method} {spec.template}"
        self.body = body
        self.engine = engine
        self.runtime = runtime

    def viewer(self, ex: Exchange) -> Viewer:
        principal = ex.ctx.principal
        policy = self.runtime.policy
        recipient = policy.identity.anonymous_recipient if principal is None else principal.recipient
        declared = policy.recipients.get(recipient)
        grants = dict(declared.sees) if declared else {}
        return Viewer(principal, recipient, grants, principal.purpose if principal else None)

    async def on_response(self, ex: Exchange) -> None:
        if not ex.response_has_json:
            return
        viewer = self.viewer(ex)
        runtime = self.runtime

        async def blocked(subject: str) -> bool:
            return await runtime.blocked_for(subject, viewer.recipient, viewer.purpose)

        report = await self.engine.disclose(self.body, ex.response_json, viewer, blocked)
        ex.response_changed = True
        for transform, count in report.transformed.items():
            self.runtime.metrics.fields.labels("response", transform).inc(count)
        if report.unknown_dropped:
            self.runtime.metrics.unknown_fields.labels(self.label, "drop").inc(report.unknown_dropped)
        ex.ctx.notes["disclosure"] = (viewer, report)


def field_factories(runtime: Runtime) -> list[StepFactory]:
    engine = runtime.fields

    def protect(spec: RouteSpec) -> Step | None:
        return ProtectRequestFields(spec.request, engine, runtime) if spec.request else None

    def disclose(spec: RouteSpec) -> Step | None:
        return DiscloseResponseFields(spec, spec.response, engine, runtime) if spec.response else None

    return [protect, disclose]
