"""Account events at the edge: logout, password and e-mail changes, registration, account closure."""

from __future__ import annotations

from ..audit import events
from ..policy.compile import RouteSpec
from ..policy.schema import AccountRoute
from ..policy.selectors import compile_selector
from ..rights.closure import AccountClosure
from ..services import Services
from .audit_emit import AuditSink, emit, response_value
from .plan import Exchange, Step, StepFactory


class AccountAudit(Step):
    """Logout, password and e-mail changes, registration and account closure."""

    peeks_response_json = True

    def __init__(self, spec: RouteSpec, account: AccountRoute, *, audit: AuditSink, closure: AccountClosure) -> None:
        self.route = f"{spec.method} {spec.template}"
        self.account = account
        self.audit = audit
        self.closure = closure
        self.subject = compile_selector(account.subject_field)

    async def after(self, ex: Exchange) -> None:
        if not 200 <= ex.status < 300:
            return
        ctx = ex.ctx
        subject = ctx.subject
        event = self.account.event
        if event == "registration":
            subject = response_value(ex, self.subject)
            if subject:
                emit(self.audit, events.account_change, "account_creation", subject=subject, ip=ctx.client_ip)
            return
        if not subject:
            return
        if event == "logout":
            emit(self.audit, events.logout, subject=subject, ip=ctx.client_ip, route=self.route)
        else:
            emit(self.audit, events.account_change, event, subject=subject, ip=ctx.client_ip)
        if event == "account_closure":
            await self.closure.closed(subject)


def factory(services: Services) -> StepFactory:
    def account(spec: RouteSpec) -> Step | None:
        if spec.account is None:
            return None
        return AccountAudit(spec, spec.account, audit=services.audit, closure=services.closure)

    return account
