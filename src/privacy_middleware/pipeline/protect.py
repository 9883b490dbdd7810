"""Request field protection: validate, strip, encrypt or tokenise classified fields (field engine)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fields.engine import FieldEngine
from ..policy.compile import CompiledBody, RouteSpec
from .plan import Exchange, Step, StepFactory

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


def factory(runtime: Runtime) -> StepFactory:
    engine = runtime.fields

    def protect(spec: RouteSpec) -> Step | None:
        return ProtectRequestFields(spec.request, engine, runtime) if spec.request else None

    return protect
