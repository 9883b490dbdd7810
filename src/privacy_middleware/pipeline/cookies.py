"""The Set-Cookie filter on every response: cookies consent does not cover are not set, and the
ones consent no longer covers are expired. Not a route step: it wraps `send` for every request."""

from __future__ import annotations

from collections.abc import Awaitable

from cachetools import LRUCache

from ..asgi.headers import first_values, get_header
from ..consent.cookie import COOKIE_NAME
from ..consent.cookie_filter import cookie_purposes, expiring_set_cookies, set_cookie_name
from ..consent.signals import parse_cookie_header
from ..context import get_context
from ..metrics import Metrics
from ..policy.schema import Policy
from ..services import Services
from ..types import Message, Scope, Send
from .consent_decision import ConsentResolver

SET_COOKIE = (b"set-cookie",)
COOKIE = (b"cookie",)


class CookieGate:
    """Set-Cookie filter for every response, and expiry of tracking cookies consent no longer covers.

    Costs a header scan per response; the consent decision is computed only when a response sets,
    or a request carries, a cookie of a consent-based purpose.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        consent: ConsentResolver,
        consent_purposes: frozenset[str],
        metrics: Metrics,
        cookie_domains: list[str],
    ) -> None:
        self.consent = consent
        self.metrics = metrics
        self.cookie_domains = cookie_domains
        self.rules = policy.tracking.cookies
        self.consent_purposes = consent_purposes
        self.drop_undeclared = policy.tracking.undeclared_cookies == "drop"
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
        """`send` with the start's Set-Cookie lines filtered. A plain function handing back `send`'s
        awaitable: a start that sets no cookie, answering a request that carries none (two header
        scans in C), and every other message cost no coroutine of their own."""

        def gated_send(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start" and (
                first_values(message.get("headers") or (), SET_COOKIE)[0] is not None
                or first_values(scope.get("headers") or (), COOKIE)[0] is not None
            ):
                return self._filtered_send(scope, message, send)
            return send(message)

        return gated_send

    async def _filtered_send(self, scope: Scope, message: Message, send: Send) -> None:
        await send(await self._filter(scope, message))

    async def _filter(self, scope: Scope, message: Message) -> Message:
        headers = list(message.get("headers") or [])
        set_cookies = [(k, v) for k, v in headers if k.lower() == b"set-cookie"]
        if self.drop_undeclared and any(self.undeclared(set_cookie_name(v)) for _, v in set_cookies):
            before = len(headers)
            headers = [
                (k, v) for k, v in headers if k.lower() != b"set-cookie" or not self.undeclared(set_cookie_name(v))
            ]
            self.metrics.cookies.labels("undeclared_removed").inc(before - len(headers))
            set_cookies = [(k, v) for k, v in headers if k.lower() == b"set-cookie"]
            message = {**message, "headers": headers}
        request_cookie = get_header(scope.get("headers") or [], b"cookie")
        governed_out = [v for _, v in set_cookies if self.governed(set_cookie_name(v))]
        governed_in = request_cookie is not None and self.governed_header(request_cookie)
        if not governed_out and not governed_in:
            return message
        resolution = await self.consent.resolve(scope, get_context(scope))
        decision = resolution.decision
        consent = self.consent
        kept = [
            (k, v)
            for k, v in headers
            if k.lower() != b"set-cookie"
            or not self.governed(set_cookie_name(v))
            or all(consent.purpose(resolution, p).allowed for p in cookie_purposes(set_cookie_name(v), self.rules))
        ]
        removed = len(headers) - len(kept)
        if removed:
            self.metrics.cookies.labels("removed").inc(removed)
        if governed_in:
            setting = {set_cookie_name(v) for k, v in kept if k.lower() == b"set-cookie"}
            for value in expiring_set_cookies(
                request_cookie.decode("latin-1") if request_cookie else None,
                self.rules,
                decision,
                domains=self.cookie_domains,
            ):
                if set_cookie_name(value) not in setting:
                    kept.append((b"set-cookie", value.encode("latin-1")))
                    self.metrics.cookies.labels("expired").inc()
        if not removed and len(kept) == len(headers):
            return message
        return {**message, "headers": kept}


def cookie_gate(services: Services) -> CookieGate | None:
    """The filter, when the policy governs cookies at all."""
    tracking = services.policy.tracking
    if not tracking.cookies and tracking.undeclared_cookies != "drop":
        return None
    return CookieGate(
        services.policy,
        consent=ConsentResolver(services.consent, services.access, services.policy),
        consent_purposes=services.consent.choosable,
        metrics=services.metrics,
        cookie_domains=services.settings.consent.cookie_domains,
    )
