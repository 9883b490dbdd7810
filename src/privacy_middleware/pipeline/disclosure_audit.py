"""One data-access event per disclosure: a response (or an outbound call) carrying several subjects'
records is one event listing them; the viewer's own data is its own `read` event."""

from __future__ import annotations

import logging
from functools import partial

from ..audit import events
from ..audit.writer import AuditWriter
from ..fields.engine import FieldReport, Viewer
from ..policy.compile import RouteSpec
from ..services import Services
from .plan import Exchange, Step, StepFactory

logger = logging.getLogger("privacy_middleware.audit")


class DisclosureAudit(Step):
    """Records the disclosure the response step made.

    Runs after the disclosure step, before the response is sent: reveals of strict categories
    (card numbers) use `emit_strict`, so the response fails (503) rather than go unrecorded.
    """

    def __init__(self, spec: RouteSpec, *, audit: AuditWriter, strict_categories: tuple[str, ...]) -> None:
        self.route = f"{spec.method} {spec.template}"
        self.purpose = spec.route.purpose if spec.route else ""
        self.audit = audit
        self.strict = strict_categories

    async def on_response(self, ex: Exchange) -> None:
        disclosure = ex.ctx.facts.disclosure
        if disclosure is None or not disclosure.report.categories or not disclosure.report.subjects:
            return  # nothing disclosed (`record_disclosure` records nothing either): no coroutine for it
        await record_disclosure(
            self.audit,
            disclosure.viewer,
            disclosure.report,
            route=self.route,
            purpose=self.purpose,
            principal=ex.ctx.principal.id if ex.ctx.principal else "anonymous",
            ip=ex.ctx.client_ip,
            strict_categories=self.strict,
        )


async def record_disclosure(
    audit: AuditWriter,
    viewer: Viewer,
    report: FieldReport,
    *,
    route: str,
    purpose: str,
    principal: str,
    ip: str | None,
    strict_categories: tuple[str, ...],
    action: str | None = None,
) -> None:
    categories = sorted(report.categories)
    if not categories or not report.subjects:
        return
    strict = any(c == s or c.startswith(s + ".") for c in categories for s in strict_categories)
    own = [s for s in report.subjects if viewer.is_subject(s)]
    others = [s for s in report.subjects if not viewer.is_subject(s)]
    for mine, subjects in ((True, own), (False, others)):
        if not subjects:
            continue
        build = partial(
            events.data_access,
            principal=principal,
            subjects=subjects,
            categories=categories,
            purpose=viewer.purpose or purpose or "unspecified",
            route=route,
            recipient=None if mine else viewer.recipient,
            action=action or ("read" if mine else "disclose"),
            ip=ip,
        )
        if not strict:
            audit.emit_later(build)  # built and sealed by the writer, off the request path
            continue
        try:
            event = build()
        except ValueError as exc:
            logger.error("data access event not built: %s", exc)
            continue
        await audit.emit_strict(event)


def factory(services: Services) -> StepFactory:
    strict = tuple(services.policy.audit.strict_categories)

    def disclosure(spec: RouteSpec) -> Step | None:
        return DisclosureAudit(spec, audit=services.audit, strict_categories=strict) if spec.response else None

    return disclosure
