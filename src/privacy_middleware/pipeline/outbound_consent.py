"""Outbound consent: the shop's calls to analytics and advertising hosts need the caller's consent."""

from __future__ import annotations

from typing import Any

import httpx

from ..context import RequestContext, current_scope, get_context
from ..errors import PrivacyError
from ..identity import IdentityChain
from ..metrics import Metrics
from ..policy.schema import Policy
from ..services import Services
from .consent_decision import ConsentResolver


class OutboundConsentGate:
    """Blocks the shop's calls to analytics and advertising hosts without the caller's consent."""

    def __init__(self, policy: Policy, *, consent: ConsentResolver, identity: IdentityChain, metrics: Metrics) -> None:
        self.consent = consent
        self.identity = identity
        self.metrics = metrics
        self.hosts = {h.host.lower(): h.purpose for h in policy.tracking.hosts}

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
            principal = await self.identity.authenticate(scope)
            ctx = RequestContext(scope.get("method", ""), scope.get("path", ""), None, principal)
        resolution = await self.consent.resolve(scope, ctx)
        answer = self.consent.purpose(resolution, purpose)
        if not answer.allowed:
            self.metrics.tracking.labels(purpose, "outbound_blocked").inc()
            raise PrivacyError(
                "consent_required",
                f"The customer has not consented to {purpose}; the call to {request.url.host} was not made.",
                403,
                extra={"purpose": purpose, "reason": answer.reason},
            )


def outbound_consent_gate(services: Services) -> OutboundConsentGate | None:
    """The gate, when the policy names tracking hosts at all."""
    if not services.policy.tracking.hosts:
        return None
    return OutboundConsentGate(
        services.policy,
        consent=ConsentResolver(services.consent, services.access, services.policy),
        identity=services.identity,
        metrics=services.metrics,
    )
