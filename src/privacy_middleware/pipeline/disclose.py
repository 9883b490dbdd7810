"""Response disclosure: let out only what the caller's recipient may see, per category (field engine)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fields.engine import FieldEngine, Viewer
from ..policy.compile import CompiledBody, RouteSpec
from .facts import Disclosure
from .plan import Exchange, Step, StepFactory

if TYPE_CHECKING:
    from ..runtime import Runtime


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
        ex.ctx.facts.disclosure = Disclosure(viewer, report)


def factory(runtime: Runtime) -> StepFactory:
    engine = runtime.fields

    def disclose(spec: RouteSpec) -> Step | None:
        return DiscloseResponseFields(spec, spec.response, engine, runtime) if spec.response else None

    return disclose
