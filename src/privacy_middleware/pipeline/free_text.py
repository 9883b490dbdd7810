"""Free text guard: card numbers, ID numbers, SSNs and IBANs pasted into free text are refused or
redacted. Refusals name the field and the kind of data, never the value; the refusal audit records them."""

from __future__ import annotations

from ..errors import PrivacyError
from ..fields.detectors import detect, redact
from ..metrics import Metrics
from ..policy.compile import CompiledFreeText, RouteSpec
from ..services import Services
from .facts import Refusal
from .plan import Exchange, Step, StepFactory


class FreeTextGuard(Step):
    """Catch card numbers, ID numbers, SSNs and IBANs pasted into free text."""

    needs_request_json = True
    declared_paths_only = True

    def __init__(self, rules: tuple[CompiledFreeText, ...], metrics: Metrics) -> None:
        self.rules = rules
        self.metrics = metrics

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        for compiled in self.rules:
            rule = compiled.rule
            for location in compiled.selector.find(ex.request_json):
                value = location.get()
                if not isinstance(value, str):
                    continue
                findings = detect(value, rule.detect)
                if not findings:
                    continue
                kinds = sorted({f.kind for f in findings})
                ex.ctx.facts.refusals.append(Refusal(rule.select, tuple(kinds), rule.action))
                self.metrics.refusals.labels(f"detected_{kinds[0]}").inc()
                if rule.action == "reject":
                    raise PrivacyError(
                        "forbidden_data_detected",
                        f"The field {rule.select!r} contains data that must not be sent here "
                        f"({', '.join(kinds)}). Remove it and try again.",
                        422,
                        extra={"field": rule.select, "kinds": kinds},
                    )
                location.set(redact(value, findings))
                ex.request_changed = True


def factory(services: Services) -> StepFactory:
    def free_text(spec: RouteSpec) -> Step | None:
        return FreeTextGuard(spec.free_text, services.metrics) if spec.free_text else None

    return free_text
