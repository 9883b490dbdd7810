"""Request field protection: validate, strip, encrypt or tokenise classified fields (field engine)."""

from __future__ import annotations

from ..fields.engine import FieldEngine
from ..metrics import Metrics
from ..policy.compile import CompiledBody, RouteSpec
from ..services import Services
from .meters import counter_add
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
        # bound once, as the bare updates of pipeline/meters.py (a report's counts are never negative)
        self.counters = {t: counter_add(metrics.fields.labels("request", t)) for t in _TRANSFORMS}

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        report = await self.engine.protect_request(self.body, ex.request_json, ex.ctx.principal)
        if report.subjects:
            ex.ctx.facts.sealed_for = frozenset(report.subjects)
        if report.transformed:
            ex.request_changed = True
            for transform, count in report.transformed.items():
                add = self.counters.get(transform)
                if add is None:
                    add = self.metrics.fields.labels("request", transform).inc
                add(count)


def factory(services: Services) -> StepFactory:
    def protect(spec: RouteSpec) -> Step | None:
        return ProtectRequestFields(spec.request, services.fields, services.metrics) if spec.request else None

    return protect
