"""Response disclosure: let out only what the caller's recipient may see, per category (field engine).

What a recipient may see is the one access decision (`policy.access`): whose record it is (named in
the record, or bound when the shop created it), the recipient's grants per category, and the
subject's restriction or objection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..fields.engine import FieldEngine, FieldReport, Viewer
from ..metrics import Metrics
from ..policy.access import Access
from ..policy.compile import CompiledBody, RouteSpec
from ..principal import Principal
from ..services import Services
from .facts import Disclosure
from .plan import Exchange, Step, StepFactory

# Whether a subject is blocked for a viewer; the bound owners of records (when the body has keys).
Lookups = tuple[Callable[[str], Awaitable[bool]], Callable[[list[str]], Awaitable[dict[str, str]]] | None]


def response_viewer(
    access: Access, principal: Principal | None, anonymous_recipient: str, route_purpose: str = ""
) -> Viewer:
    """Who receives a response: the principal's recipient (the anonymous one without a principal),
    with that recipient's grants from the one access decision; the subject sees their own full card
    number only when `[cards].reveal` names the token's or the route's purpose."""
    recipient = anonymous_recipient if principal is None else principal.recipient
    purpose = principal.purpose if principal else None
    reveal = access.reveals_cards(purpose, route_purpose)
    return Viewer(principal, recipient, access.grants(recipient), purpose, reveal_cards=reveal)


class DiscloseResponseFields(Step):
    """Let out only what the caller's recipient may see, per category; drop the rest."""

    needs_response_json = True
    declared_paths_only = True

    def __init__(
        self,
        spec: RouteSpec,
        body: CompiledBody,
        *,
        engine: FieldEngine,
        access: Access,
        metrics: Metrics,
        anonymous_recipient: str,
    ) -> None:
        self.label = f"{spec.method} {spec.template}"
        self.purpose = spec.route.purpose if spec.route is not None else ""
        self.body = body
        self.engine = engine
        self.access = access
        self.metrics = metrics
        self.anonymous_recipient = anonymous_recipient
        # Metric children bound once per route, not looked up by label on every response.
        self.counters: dict[str, Any] = {}
        self.unknown_dropped = metrics.unknown_fields.labels(self.label, "drop")
        # The viewer of the last principal seen here, by identity, with its look-ups: the identity chain
        # hands a repeat caller the principal it verified before, and a viewer (and what the look-ups
        # ask) depends only on it and this route.
        self._last: tuple[Principal | None, Viewer, Lookups] | None = None

    def _viewing(self, ex: Exchange) -> tuple[Principal | None, Viewer, Lookups]:
        principal = ex.ctx.principal
        last = self._last
        if last is not None and last[0] is principal:
            return last
        viewer = response_viewer(self.access, principal, self.anonymous_recipient, self.purpose)
        last = self._last = (principal, viewer, self._lookups(viewer))
        return last

    def viewer(self, ex: Exchange) -> Viewer:
        return self._viewing(ex)[1]

    # `on_response` does nothing without a parsed body: after `on_response_bytes` gave the body it
    # is not called (`RoutePlan.on_responses_after_bytes`).
    reads_parsed_response_only = True

    async def on_response(self, ex: Exchange) -> None:
        if not ex.response_has_json:
            return
        _, viewer, lookups = self._viewing(ex)
        report = await self.engine.disclose(self.body, ex.response_json, viewer, *lookups)
        ex.response_changed = True
        self._record(ex, viewer, report)

    async def on_response_bytes(self, ex: Exchange, body: bytes) -> bytes | None:
        """The common case in one native pass over the bytes (`FieldEngine.disclose_bytes`), or None."""
        _, viewer, lookups = self._viewing(ex)
        got = await self.engine.disclose_bytes(self.body, body, viewer, *lookups)
        if got is None:
            return None
        ex.response_changed = True
        self._record(ex, viewer, got[1])
        return got[0]

    def _lookups(self, viewer: Viewer) -> Lookups:
        """Whether a subject is blocked for this viewer; the bound owners of records (if the body has keys)."""
        access = self.access

        async def blocked(subject: str) -> bool:
            return await access.blocked_for(subject, viewer.recipient, viewer.purpose)

        owners = None
        if self.body.record_key is not None and access.owners is not None:
            kind = self.body.kind

            async def bound(keys: list[str]) -> dict[str, str]:
                return await access.record_owners(kind, keys)

            owners = bound
        return blocked, owners

    def _record(self, ex: Exchange, viewer: Viewer, report: FieldReport) -> None:
        counters = self.counters
        for transform, count in report.transformed.items() if report.transformed else ():
            counter = counters.get(transform)
            if counter is None:
                counter = counters[transform] = self.metrics.fields.labels("response", transform)
            counter.inc(count)
        if report.unknown_dropped:
            self.unknown_dropped.inc(report.unknown_dropped)
        ex.ctx.facts.disclosure = Disclosure(viewer, report)


def factory(services: Services) -> StepFactory:
    anonymous = services.policy.identity.anonymous_recipient

    def disclose(spec: RouteSpec) -> Step | None:
        if spec.response is None:
            return None
        return DiscloseResponseFields(
            spec,
            spec.response,
            engine=services.fields,
            access=services.access,
            metrics=services.metrics,
            anonymous_recipient=anonymous,
        )

    return disclose
