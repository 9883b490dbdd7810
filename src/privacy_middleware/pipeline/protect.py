"""Request field protection: validate, strip, encrypt or tokenise classified fields (field engine)."""

from __future__ import annotations

from ..fields.engine import FieldEngine
from ..metrics import Metrics
from ..policy.compile import CompiledBody, RouteSpec
from ..services import Services
from .plan import Exchange, Step, StepFactory

_TRANSFORMS = ("strip", "encrypt", "encrypt_deterministic", "tokenise")


class ProtectRequestFields(Step):
    """Validate, strip, encrypt or tokenise classified fields before the shop sees them."""

    needs_request_json = True
    declared_paths_only = True

    def __init__(self, body: CompiledBody, engine: FieldEngine, metrics: Metrics) -> None:
        self.body = body
        self.engine = engine
        self.metrics = metrics
        self.counters = {t: metrics.fields.labels("request", t) for t in _TRANSFORMS}  # bound once

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        report = await self.engine.protect_request(self.body, ex.request_json, ex.ctx.principal)
        if report.subjects:
            ex.ctx.facts.sealed_for = frozenset(report.subjects)
        if report.transformed:
            ex.request_changed = True
            for transform, count in report.transformed.items():
                counter = self.counters.get(transform) or self.metrics.fields.labels("request", transform)
                counter.inc(count)


def factory(services: Services) -> StepFactory:
    def protect(spec: RouteSpec) -> Step | None:
        return ProtectRequestFields(spec.request, services.fields, services.metrics) if spec.request else None

    return protect
