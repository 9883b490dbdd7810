"""The request's consent decision, computed once and kept in the request's facts."""

from __future__ import annotations

from ..consent.consent_mode import ConsentModeHeaders
from ..consent.decisions import Decision
from ..consent.service import ConsentService, Resolution
from ..consent.signals import request_signals
from ..context import RequestContext
from ..policy.access import Access, PurposeAnswer
from ..policy.schema import Policy
from ..types import Scope

_KEPT_DECISIONS = 1024


class ConsentResolver:
    """Consent for this request: its signals (cookie, GPC, TC string) and the subject's rights flags."""

    def __init__(self, consent: ConsentService, access: Access, policy: Policy) -> None:
        self.consent = consent
        self.access = access
        self.policy = policy
        self.consent_mode = ConsentModeHeaders(policy)  # one header per distinct decision, built once
        # The hint headers and the purposes' answers per decision object (the consent service hands the
        # same decision back for the same cookie): keyed by id, the decision kept beside them so an id is
        # never reused while cached.
        self._headers: dict[int, tuple[Decision, tuple[tuple[bytes, bytes], ...], dict[str, bool]]] = {}

    def known(self, scope: Scope, ctx: RequestContext | None) -> Resolution | None:
        """`resolve` where it needs no await: the request's decision when it was made already, or a
        visitor's (no subject) that the consent service remembers; None otherwise."""
        if ctx is not None:
            if ctx.facts.consent is not None:
                return ctx.facts.consent
            if ctx.subject:
                return None
        signals = request_signals(scope.get("headers") or [], scope.get("query_string", b""))
        known = self.consent.remembered_visitor(signals.consent_cookie, signals.gpc, signals.tc_string)
        if known is not None and ctx is not None:
            ctx.facts.consent = known
        return known

    async def resolve(self, scope: Scope, ctx: RequestContext | None) -> Resolution:
        """The request's consent decision, computed once per request."""
        if ctx is not None and ctx.facts.consent is not None:
            return ctx.facts.consent
        signals = request_signals(scope.get("headers") or [], scope.get("query_string", b""))
        subject = ctx.subject if ctx is not None else None
        objected, restricted = (await self.access.subject_flags(subject)) if subject else (frozenset(), False)
        resolution = await self.consent.resolve(
            subject=subject,
            consent_cookie=signals.consent_cookie,
            gpc=signals.gpc,
            tc_string=signals.tc_string,
            objected=objected,
            restricted=restricted,
        )
        if ctx is not None:
            ctx.facts.consent = resolution
        return resolution

    def purpose(self, resolution: Resolution, purpose: str) -> PurposeAnswer:
        """May this purpose run for the request? The one access decision answers."""
        return self.access.purpose(purpose, resolution.decision)

    def allows(self, resolution: Resolution, purpose: str) -> bool:
        """`purpose(...).allowed`, the same access decision without its reason."""
        return self.access.allows(purpose, resolution.decision)

    def headers(self, resolution: Resolution) -> tuple[tuple[bytes, bytes], ...]:
        """Consent Mode hints for the shop's front end, and a re-consent flag when the policy changed."""
        return self._kept(resolution.decision)[1]

    def verdict(self, resolution: Resolution, purpose: str) -> tuple[bool, tuple[tuple[bytes, bytes], ...]]:
        """`(allows(resolution, purpose), headers(resolution))` in one look-up: both are kept per
        decision object (a frozen decision answers a purpose the same way every time it is asked)."""
        kept = self._kept(resolution.decision)
        allowed = kept[2].get(purpose)
        if allowed is None:
            allowed = kept[2][purpose] = self.access.allows(purpose, kept[0])
        return allowed, kept[1]

    def _kept(self, decision: Decision) -> tuple[Decision, tuple[tuple[bytes, bytes], ...], dict[str, bool]]:
        """The decision's hint headers and its answers per purpose asked so far, kept by its id."""
        known = self._headers.get(id(decision))
        if known is not None and known[0] is decision:
            return known
        headers = [(b"consent-mode", self.consent_mode.header(decision))]
        if decision.reconsent_required:
            headers.append((b"privacy-reconsent", b"required"))
        answers: dict[str, bool] = {}
        built = (decision, tuple(headers), answers)
        if len(self._headers) >= _KEPT_DECISIONS:
            self._headers.clear()
        self._headers[id(decision)] = built
        return built
