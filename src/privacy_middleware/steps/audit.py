"""Audit at the edge: login outcomes and lockout, account events, every disclosure of personal
data, and refused attempts — recorded without values (raw IP, username and user agent go to the
encrypted side records the audit layer keeps)."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..asgi.headers import media_type
from ..audit import events
from ..audit.events import AuditEvent
from ..errors import PrivacyError
from ..fields.engine import FieldReport, Viewer
from ..fields.selectors import Selector, compile_selector
from ..pipeline import Exchange, Step, StepFactory
from ..policy.compile import RouteSpec
from ..policy.schema import AccountRoute, LoginRoute

if TYPE_CHECKING:
    from ..runtime import Runtime

logger = logging.getLogger("privacy_middleware.audit")


def read_username(ex: Exchange, field: Selector) -> str | None:
    """The login name from a JSON or form body; None for anything else (still an attempt)."""
    if ex.request_has_json:
        value = next(iter(field.values(ex.request_json)), None)
        return value if isinstance(value, str) else None
    if media_type(ex.scope.get("headers") or []) == "application/x-www-form-urlencoded" and ex.request_body:
        values = parse_qs(ex.request_body.decode("utf-8", "replace")).get(field.last_key or "")
        return values[0] if values else None
    return None


def response_value(ex: Exchange, field: Selector) -> str | None:
    if not ex.response_has_json:
        return None
    value = next(iter(field.values(ex.response_json)), None)
    return str(value) if isinstance(value, str | int) else None


def emit(runtime: Runtime, build: Any, *args: Any, **kwargs: Any) -> None:
    """Build and queue an event; a builder refusing its input is a bug to log, never a crash."""
    try:
        event: AuditEvent = build(*args, **kwargs)
    except ValueError as exc:
        logger.error("audit event %s not built: %s", getattr(build, "__name__", build), exc)
        return
    runtime.audit.emit(event)


class LoginAudit(Step):
    """Refuse locked-out logins (429) before the shop sees them; record every attempt's outcome."""

    needs_request_body = True
    peeks_response_json = True

    def __init__(self, spec: RouteSpec, login: LoginRoute, runtime: Runtime) -> None:
        self.route = f"{spec.method} {spec.template}"
        self.login = login
        self.runtime = runtime
        self.username = compile_selector(login.username_field)
        self.subject = compile_selector(login.subject_field)

    async def on_request(self, ex: Exchange) -> None:
        username = read_username(ex, self.username)
        ex.ctx.notes["login_username"] = username
        lockout = await self.runtime.login_guard.check(username or "", ex.ctx.client_ip or "")
        if lockout is not None:
            ex.ctx.notes["login_locked"] = lockout.reason
            raise PrivacyError(
                "too_many_attempts",
                "Too many failed sign-in attempts. Try again later.",
                429,
                headers={"Retry-After": str(lockout.retry_after)},
            )

    async def after(self, ex: Exchange) -> None:
        ctx = ex.ctx
        username = ctx.notes.get("login_username")
        ip = ctx.client_ip or ""
        if "login_locked" in ctx.notes:
            emit(
                self.runtime,
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
                self.runtime,
                events.login_attempt,
                success=True,
                subject=subject,
                username=username,
                ip=ip,
                user_agent=ctx.user_agent,
                device=None,
                route=self.route,
            )
            if username:
                await self.runtime.login_guard.record_success(username, ip, ctx.user_agent, subject=subject)
            if subject:
                await self.runtime.link_visitor_consent(ex.scope, subject)
        elif 400 <= ex.status < 500:
            emit(
                self.runtime,
                events.login_attempt,
                success=False,
                username=username,
                ip=ip,
                user_agent=ctx.user_agent,
                reason="BAD_CREDENTIALS",
                route=self.route,
            )
            await self.runtime.login_guard.record_failure(username or "", ip)


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


class DisclosureAudit(Step):
    """One data-access event per subject whose personal data a response carries out.

    Runs after the disclosure step, before the response is sent: reveals of strict categories
    (card numbers) use `emit_strict`, so the response fails (503) rather than go unrecorded.
    """

    def __init__(self, spec: RouteSpec, runtime: Runtime) -> None:
        self.route = f"{spec.method} {spec.template}"
        self.purpose = spec.route.purpose if spec.route else ""
        self.runtime = runtime
        self.strict = tuple(runtime.policy.audit.strict_categories)

    async def on_response(self, ex: Exchange) -> None:
        disclosure = ex.ctx.notes.get("disclosure")
        if disclosure is None:
            return
        viewer, report = disclosure
        await record_disclosure(
            self.runtime,
            viewer,
            report,
            route=self.route,
            purpose=self.purpose,
            principal=ex.ctx.principal.id if ex.ctx.principal else "anonymous",
            ip=ex.ctx.client_ip,
            strict_categories=self.strict,
        )


async def record_disclosure(
    runtime: Runtime,
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
    for subject in sorted(report.subjects):
        own = viewer.is_subject(subject)
        build = partial(
            events.data_access,
            principal=principal,
            subject=subject,
            categories=categories,
            purpose=viewer.purpose or purpose or "unspecified",
            route=route,
            recipient=None if own else viewer.recipient,
            action=action or ("read" if own else "disclose"),
            ip=ip,
        )
        if not strict:
            runtime.audit.emit_later(build)  # built and sealed by the writer, off the request path
            continue
        try:
            event = build()
        except ValueError as exc:
            logger.error("data access event not built: %s", exc)
            continue
        await runtime.audit.emit_strict(event)


class RefusalAudit(Step):
    """Attempts the minimisation guard refused: recorded by kind and field, never by value."""

    def __init__(self, spec: RouteSpec, runtime: Runtime) -> None:
        self.route = f"{spec.method} {spec.template}"
        self.runtime = runtime

    async def after(self, ex: Exchange) -> None:
        notes = ex.ctx.notes
        subject = ex.ctx.subject
        for finding in notes.get("minimisation", []):
            emit(
                self.runtime,
                events.detection_finding,
                "forbidden_data_submitted",
                title="Personal data the policy forbids was submitted",
                subject=subject,
                severity_id=events.SEVERITY_LOW,
                related={
                    "route": self.route,
                    "field": finding["field"],
                    "kinds": finding["kinds"],
                    "action": finding["action"],
                },
                ip=ex.ctx.client_ip,
            )
        if notes.get("underage"):
            emit(
                self.runtime,
                events.detection_finding,
                "underage_registration",
                title="A registration below the minimum age was refused",
                severity_id=events.SEVERITY_LOW,
                related={"route": self.route},
                ip=ex.ctx.client_ip,
            )


def audit_factories(runtime: Runtime) -> list[StepFactory]:
    def login(spec: RouteSpec) -> Step | None:
        return LoginAudit(spec, spec.login, runtime) if spec.login else None

    def account(spec: RouteSpec) -> Step | None:
        return AccountAudit(spec, spec.account, runtime) if spec.account else None

    def disclosure(spec: RouteSpec) -> Step | None:
        return DisclosureAudit(spec, runtime) if spec.response else None

    def refusals(spec: RouteSpec) -> Step | None:
        return RefusalAudit(spec, runtime) if (spec.free_text or spec.minors or spec.request) else None

    return [login, account, disclosure, refusals]
