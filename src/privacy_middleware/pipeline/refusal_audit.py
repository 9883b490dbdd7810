"""Attempts the minimisation guards refused, recorded by kind and field, never by value."""

from __future__ import annotations

from ..audit import events
from ..policy.compile import RouteSpec
from ..services import Services
from .audit_emit import AuditSink, emit
from .plan import Exchange, Step, StepFactory


class RefusalAudit(Step):
    """Attempts the minimisation guard refused: recorded by kind and field, never by value."""

    def __init__(self, spec: RouteSpec, *, audit: AuditSink) -> None:
        self.route = f"{spec.method} {spec.template}"
        self.audit = audit

    async def after(self, ex: Exchange) -> None:
        facts = ex.ctx.facts
        subject = ex.ctx.subject
        for refusal in facts.refusals:
            emit(
                self.audit,
                events.detection_finding,
                "forbidden_data_submitted",
                title="Personal data the policy forbids was submitted",
                subject=subject,
                severity_id=events.SEVERITY_LOW,
                related={
                    "route": self.route,
                    "field": refusal.field,
                    "kinds": list(refusal.kinds),
                    "action": refusal.action,
                },
                ip=ex.ctx.client_ip,
            )
        if facts.underage:
            emit(
                self.audit,
                events.detection_finding,
                "underage_registration",
                title="A registration below the minimum age was refused",
                severity_id=events.SEVERITY_LOW,
                related={"route": self.route},
                ip=ex.ctx.client_ip,
            )


def factory(services: Services) -> StepFactory:
    def refusals(spec: RouteSpec) -> Step | None:
        return RefusalAudit(spec, audit=services.audit) if (spec.free_text or spec.minors or spec.request) else None

    return refusals
