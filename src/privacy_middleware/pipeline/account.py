"""Account events at the edge: logout, password and e-mail changes, registration, account closure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..audit import events
from ..fields.selectors import compile_selector
from ..policy.compile import RouteSpec
from ..policy.schema import AccountRoute
from .audit_emit import emit, response_value
from .plan import Exchange, Step, StepFactory

if TYPE_CHECKING:
    from ..runtime import Runtime


class AccountAudit(Step):
    """Logout, password and e-mail changes, registration and account closure."""

    peeks_response_json = True

    def __init__(self, spec: RouteSpec, account: AccountRoute, runtime: Runtime) -> None:
        self.route = f"{spec.method} {spec.template}"
        self.account = account
        self.runtime = runtime
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
                emit(self.runtime, events.account_change, "account_creation", subject=subject, ip=ctx.client_ip)
            return
        if not subject:
            return
        if event == "logout":
            emit(self.runtime, events.logout, subject=subject, ip=ctx.client_ip, route=self.route)
        else:
            emit(self.runtime, events.account_change, event, subject=subject, ip=ctx.client_ip)
        if event == "account_closure":
            await self.runtime.account_closed(subject)


def factory(runtime: Runtime) -> StepFactory:
    def account(spec: RouteSpec) -> Step | None:
        return AccountAudit(spec, spec.account, runtime) if spec.account else None

    return account
