"""Outbound consent: the shop's calls to analytics and advertising hosts need the caller's consent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from ..asgi.headers import get_header
from ..context import RequestContext, current_scope, get_context
from ..errors import PrivacyError
from .consent_decision import resolve_consent

if TYPE_CHECKING:
    from ..runtime import Runtime


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
