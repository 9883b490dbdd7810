"""Consent at the API edge: tracking routes gated by purpose, cookies filtered and expired,
outbound analytics calls blocked without consent. Decisions come from the one ConsentService."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from cachetools import LRUCache

from ..asgi.client_ip import truncate_ip
from ..asgi.headers import get_header, without
from ..consent.consent_mode import consent_mode, consent_mode_header
from ..consent.cookie import COOKIE_NAME
from ..consent.cookie_filter import cookie_purposes, expiring_set_cookies, set_cookie_name
from ..consent.service import Resolution
from ..consent.signals import parse_cookie_header, request_signals
from ..context import RequestContext, current_scope, get_context
from ..errors import PrivacyError
from ..fields.selectors import compile_selector
from ..pipeline import Exchange, Respond, Step, StepFactory
from ..policy.compile import RouteSpec
from ..policy.schema import TrackingRoute
from ..types import Message, Scope, Send

if TYPE_CHECKING:
    from ..runtime import Runtime

FORWARDING_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip", b"true-client-ip", b"cf-connecting-ip")
CREDENTIALS = (b"authorization", b"cookie")


async def resolve_consent(runtime: Runtime, scope: Scope, ctx: RequestContext | None) -> Resolution:
    """The request's consent decision, computed once per request."""
    if ctx is not None and "consent" in ctx.notes:
        return ctx.notes["consent"]  # type: ignore[no-any-return]
    signals = request_signals(scope.get("headers") or [], scope.get("query_string", b""))
    subject = ctx.subject if ctx is not None else None
    objected, restricted = (await runtime.subject_flags(subject)) if subject else (frozenset(), False)
    resolution = await runtime.consent.resolve(
        subject=subject,
        consent_cookie=signals.consent_cookie,
        gpc=signals.gpc,
        tc_string=signals.tc_string,
        objected=objected,
        restricted=restricted,
    )
    if ctx is not None:
        ctx.notes["consent"] = resolution
    return resolution


def consent_headers(runtime: Runtime, resolution: Resolution) -> list[tuple[bytes, bytes]]:
    headers = [(b"consent-mode", consent_mode_header(consent_mode(runtime.policy, resolution.decision)).encode())]
    if resolution.decision.reconsent_required:
        headers.append((b"privacy-reconsent", b"required"))
    return headers


class TrackingGate(Step):
    """Drop tracking events without consent for their purpose; strip identity from the rest."""

    def __init__(self, tracked: TrackingRoute, runtime: Runtime) -> None:
        self.tracked = tracked
        self.runtime = runtime
        self.pseudonymise = [compile_selector(s) for s in tracked.pseudonymise]
        self.truncate = [compile_selector(s) for s in tracked.truncate_ip]
        self.drop = [compile_selector(s) for s in tracked.drop]
        self.needs_request_json = bool(self.pseudonymise or self.truncate or self.drop)
        recipients = [r for r in runtime.policy.recipients.values() if tracked.purpose in r.purposes]
        self.pseudonym_scope = (recipients[0].pseudonym_scope if recipients else "") or f"tracking:{tracked.purpose}"

    async def before(self, ex: Exchange) -> None:
        resolution = await resolve_consent(self.runtime, ex.scope, ex.ctx)
        purpose = self.tracked.purpose
        if not resolution.decision.allowed(purpose):
            self.runtime.metrics.tracking.labels(purpose, "dropped").inc()
            ex.ctx.notes["tracking"] = "dropped"
            raise Respond(self.tracked.denied_status, consent_headers(self.runtime, resolution))
        self.runtime.metrics.tracking.labels(purpose, "passed").inc()
        ex.ctx.notes["tracking"] = "passed"
        # The shop sees a network, not a device: truncate the peer address and drop forwarding hops.
        client = ex.scope.get("client")
        if ex.ctx.client_ip:
            ex.scope["client"] = (truncate_ip(ex.ctx.client_ip), client[1] if client else 0)
        stripped = FORWARDING_HEADERS if self.tracked.forward_credentials else (*FORWARDING_HEADERS, *CREDENTIALS)
        ex.scope["headers"] = without(ex.scope.get("headers") or [], *stripped)
        ex.extra_headers.extend(consent_headers(self.runtime, resolution))

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        pseudonymiser = self.runtime.fields.pseudonymiser
        for selector in self.pseudonymise:
            for location in list(selector.locations(ex.request_json)):
                value = location.get()
                if value is not None and not isinstance(value, dict | list):
                    location.set(pseudonymiser.pseudonym(value, self.pseudonym_scope))
        for selector in self.truncate:
            for location in list(selector.locations(ex.request_json)):
                value = location.get()
                location.set(truncate_ip(value) if isinstance(value, str) else None)
        for selector in self.drop:
            for location in list(selector.locations(ex.request_json)):
                location.delete()
        ex.request_changed = True


def consent_factories(runtime: Runtime) -> list[StepFactory]:
    def tracking(spec: RouteSpec) -> Step | None:
        return TrackingGate(spec.tracking, runtime) if spec.tracking else None

    return [tracking]


class CookieGate:
    """Set-Cookie filter for every response, and expiry of tracking cookies consent no longer covers.

    Costs a header scan per response; the consent decision is computed only when a response sets,
    or a request carries, a cookie of a consent-based purpose.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.rules = runtime.policy.tracking.cookies
        self.consent_purposes = runtime.consent.choosable
        self.drop_undeclared = runtime.policy.tracking.undeclared_cookies == "drop"
        # Browsers send the same Cookie header again and again: remember which ones matter.
        self._governed_names: LRUCache[str, bool] = LRUCache(maxsize=4096)
        self._governed_headers: LRUCache[bytes, bool] = LRUCache(maxsize=4096)

    def governed(self, name: str) -> bool:
        known = self._governed_names.get(name)
        if known is None:
            known = self._governed_names[name] = any(
                p in self.consent_purposes for p in cookie_purposes(name, self.rules)
            )
        return known

    def governed_header(self, header: bytes) -> bool:
        """Whether a request's Cookie header carries a cookie of a consent-based purpose."""
        known = self._governed_headers.get(header)
        if known is None:
            names = parse_cookie_header(header.decode("latin-1"))
            known = self._governed_headers[header] = any(self.governed(name) for name in names)
        return known

    def undeclared(self, name: str) -> bool:
        """A cookie no rule declares (the middleware's own consent cookie is always declared)."""
        return self.drop_undeclared and name != COOKIE_NAME and not cookie_purposes(name, self.rules)

    def wrap(self, scope: Scope, send: Send) -> Send:
        async def gated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = await self._filter(scope, message)
            await send(message)

        return gated_send

    async def _filter(self, scope: Scope, message: Message) -> Message:
        headers = list(message.get("headers") or [])
        set_cookies = [(k, v) for k, v in headers if k.lower() == b"set-cookie"]
        if self.drop_undeclared and any(self.undeclared(set_cookie_name(v)) for _, v in set_cookies):
            before = len(headers)
            headers = [
                (k, v) for k, v in headers if k.lower() != b"set-cookie" or not self.undeclared(set_cookie_name(v))
            ]
            self.runtime.metrics.cookies.labels("undeclared_removed").inc(before - len(headers))
            set_cookies = [(k, v) for k, v in headers if k.lower() == b"set-cookie"]
            message = {**message, "headers": headers}
        request_cookie = get_header(scope.get("headers") or [], b"cookie")
        governed_out = [v for _, v in set_cookies if self.governed(set_cookie_name(v))]
        governed_in = request_cookie is not None and self.governed_header(request_cookie)
        if not governed_out and not governed_in:
            return message
        resolution = await resolve_consent(self.runtime, scope, get_context(scope))
        decision = resolution.decision
        kept = [
            (k, v)
            for k, v in headers
            if k.lower() != b"set-cookie"
            or not self.governed(set_cookie_name(v))
            or all(decision.allowed(p) for p in cookie_purposes(set_cookie_name(v), self.rules))
        ]
        removed = len(headers) - len(kept)
        if removed:
            self.runtime.metrics.cookies.labels("removed").inc(removed)
        if governed_in:
            setting = {set_cookie_name(v) for k, v in kept if k.lower() == b"set-cookie"}
            for value in expiring_set_cookies(
                request_cookie.decode("latin-1") if request_cookie else None,
                self.rules,
                decision,
                domains=self.runtime.settings.consent.cookie_domains,
            ):
                if set_cookie_name(value) not in setting:
                    kept.append((b"set-cookie", value.encode("latin-1")))
                    self.runtime.metrics.cookies.labels("expired").inc()
        if not removed and len(kept) == len(headers):
            return message
        return {**message, "headers": kept}


class OutboundConsentGate:
    """Blocks the shop's calls to analytics and advertising hosts without the caller's consent."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.hosts = {h.host.lower(): h.purpose for h in runtime.policy.tracking.hosts}

    async def __call__(self, request: httpx.Request) -> None:
        purpose = self.hosts.get(request.url.host.lower())
        if purpose is None:
            return
        scope: Any = current_scope.get()
        if scope is None:
            raise PrivacyError(
                "consent_unknown",
                f"A call to a {purpose} host outside any customer request has no consent to rely on.",
                403,
            )
        ctx = get_context(scope)
        if ctx is None:
            principal = await self.runtime.verifier.authenticate(
                get_header(scope.get("headers") or [], b"authorization")
            )
            ctx = RequestContext(scope.get("method", ""), scope.get("path", ""), None, principal)
        resolution = await resolve_consent(self.runtime, scope, ctx)
        if not resolution.decision.allowed(purpose):
            self.runtime.metrics.tracking.labels(purpose, "outbound_blocked").inc()
            raise PrivacyError(
                "consent_required",
                f"The customer has not consented to {purpose}; the call to {request.url.host} was not made.",
                403,
                extra={"purpose": purpose, "reason": resolution.decision.reason(purpose)},
            )
