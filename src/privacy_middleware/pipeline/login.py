"""Sign-in attempts: refuse locked-out logins before the shop sees them and record every outcome
(without values: raw IP, username and user agent go to the encrypted side records of the audit)."""

from __future__ import annotations

from urllib.parse import parse_qs

from ..asgi.headers import media_type
from ..audit import events
from ..audit.attempts import Outcome
from ..audit.detectors import LoginGuard
from ..consent.linking import link_visitor_consent
from ..consent.service import ConsentService
from ..errors import PrivacyError
from ..policy.compile import RouteSpec
from ..policy.schema import LoginRoute
from ..policy.selectors import Selector, compile_selector
from ..services import Services
from .audit_emit import AuditSink, emit, response_value
from .plan import Exchange, Step, StepFactory


def read_username(ex: Exchange, field: Selector) -> str | None:
    """The login name from a JSON or form body; None for anything else (still an attempt)."""
    if ex.request_has_json:
        value = next(iter(field.values(ex.request_json)), None)
        return value if isinstance(value, str) else None
    if media_type(ex.scope.get("headers") or []) == "application/x-www-form-urlencoded" and ex.request_body:
        values = parse_qs(ex.request_body.decode("utf-8", "replace")).get(field.last_key or "")
        return values[0] if values else None
    return None


class LoginAudit(Step):
    """Refuse locked-out logins (429) before the shop sees them; record every attempt's outcome."""

    needs_request_body = True
    peeks_response_json = True

    def __init__(
        self, spec: RouteSpec, login: LoginRoute, *, audit: AuditSink, guard: LoginGuard, consent: ConsentService
    ) -> None:
        self.route = f"{spec.method} {spec.template}"
        self.login = login
        self.audit = audit
        self.guard = guard
        self.consent = consent
        self.username = compile_selector(login.username_field)
        self.subject = compile_selector(login.subject_field)

    async def on_request(self, ex: Exchange) -> None:
        facts = ex.ctx.facts
        facts.login_username = username = read_username(ex, self.username)
        # Reserved (counted) before the shop sees it: concurrent guesses can never exceed the limit.
        reservation = await self.guard.reserve(username or "", ex.ctx.client_ip or "")
        if not reservation.granted:
            lockout = reservation.lockout
            facts.login_locked = lockout.reason if lockout else "locked"
            raise PrivacyError(
                "too_many_attempts",
                "Too many failed sign-in attempts. Try again later.",
                429,
                headers={"Retry-After": str(lockout.retry_after if lockout else 60)},
            )
        facts.login_reservation = reservation

    async def after(self, ex: Exchange) -> None:
        ctx = ex.ctx
        username = ctx.facts.login_username
        ip = ctx.client_ip or ""
        if ctx.facts.login_locked is not None:
            emit(
                self.audit,
                events.login_attempt,
                success=False,
                username=username,
                ip=ip,
                user_agent=ctx.user_agent,
                reason="LOCKED_OUT",
                route=self.route,
            )
            return
        if ex.status in self.login.success_statuses:
            subject = response_value(ex, self.subject)
            emit(
                self.audit,
                events.login_attempt,
                success=True,
                subject=subject,
                username=username,
                ip=ip,
                user_agent=ctx.user_agent,
                device=None,
                route=self.route,
            )
            await self._finish(ex, username, ip, "success", subject=subject)
            if subject:
                await link_visitor_consent(self.consent, ex.scope.get("headers") or [], subject)
        elif 400 <= ex.status < 500:
            emit(
                self.audit,
                events.login_attempt,
                success=False,
                username=username,
                ip=ip,
                user_agent=ctx.user_agent,
                reason="BAD_CREDENTIALS",
                route=self.route,
            )
            await self._finish(ex, username, ip, "failure")
        else:
            await self._finish(ex, username, ip, "void")  # the shop never judged it: given back

    async def _finish(
        self, ex: Exchange, username: str | None, ip: str, outcome: Outcome, *, subject: str | None = None
    ) -> None:
        reservation = ex.ctx.facts.login_reservation
        if reservation is None:
            return
        await self.guard.finish(reservation, username or "", ip, outcome, device=ex.ctx.user_agent, subject=subject)


def factory(services: Services) -> StepFactory:
    def login(spec: RouteSpec) -> Step | None:
        if spec.login is None:
            return None
        return LoginAudit(spec, spec.login, audit=services.audit, guard=services.login_guard, consent=services.consent)

    return login
