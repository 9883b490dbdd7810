"""Tracking routes gated by the consent for their purpose; the events let through lose identity."""

from __future__ import annotations

from ..asgi.client_ip import truncate_ip
from ..fields.engine import Pseudonymiser
from ..metrics import Metrics
from ..policy.compile import RouteSpec
from ..policy.schema import Policy, TrackingRoute
from ..policy.selectors import Selector, compile_selector
from ..services import Services
from .consent_decision import ConsentResolver
from .meters import counter_inc
from .plan import Exchange, Respond, Step, StepFactory

FORWARDING_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip", b"true-client-ip", b"cf-connecting-ip")
CREDENTIALS = (b"authorization", b"cookie")
CONTAINERS = (dict, list)  # values that are not pseudonymised (made once, not per value)


class TrackingGate(Step):
    """Drop tracking events without consent for their purpose; strip identity from the rest."""

    def __init__(
        self,
        tracked: TrackingRoute,
        *,
        policy: Policy,
        consent: ConsentResolver,
        pseudonymiser: Pseudonymiser,
        metrics: Metrics,
    ) -> None:
        self.tracked = tracked
        self.consent = consent
        self.pseudonymiser = pseudonymiser
        self.metrics = metrics
        self.pseudonymise = [compile_selector(s) for s in tracked.pseudonymise]
        self.truncate = [compile_selector(s) for s in tracked.truncate_ip]
        self.drop = [compile_selector(s) for s in tracked.drop]
        self.needs_request_json = bool(self.pseudonymise or self.truncate or self.drop)
        # The common policy names top-level keys only (`visitor_id`, `ip`) and drops nothing: then a
        # JSON object is rewritten by key look-ups, as the selectors would (same order, same values).
        pseudonymised, truncated = _top_keys(self.pseudonymise), _top_keys(self.truncate)
        self.top_keys = None
        if pseudonymised is not None and truncated is not None and not self.drop:
            self.top_keys = (pseudonymised, truncated)
        recipients = [r for r in policy.recipients.values() if tracked.purpose in r.purposes]
        self.pseudonym_scope = (recipients[0].pseudonym_scope if recipients else "") or f"tracking:{tracked.purpose}"
        # metric children bound once, updated without the per-call checks (pipeline/meters.py)
        self.dropped = counter_inc(metrics.tracking.labels(tracked.purpose, "dropped"))
        self.passed = counter_inc(metrics.tracking.labels(tracked.purpose, "passed"))
        # the headers that leave the request (as asgi.headers.without, with the set made once)
        self.stripped = frozenset(
            FORWARDING_HEADERS if tracked.forward_credentials else FORWARDING_HEADERS + CREDENTIALS
        )

    async def before(self, ex: Exchange) -> None:
        resolution = self.consent.known(ex.scope, ex.ctx)  # a visitor's repeat decision: no await
        if resolution is None:
            resolution = await self.consent.resolve(ex.scope, ex.ctx)
        allowed, hints = self.consent.verdict(resolution, self.tracked.purpose)
        if not allowed:
            self.dropped()
            raise Respond(self.tracked.denied_status, list(hints))
        self.passed()
        # The shop sees a network, not a device: truncate the peer address and drop forwarding hops.
        client = ex.scope.get("client")
        if ex.ctx.client_ip:
            ex.scope["client"] = (truncate_ip(ex.ctx.client_ip), client[1] if client else 0)
        stripped = self.stripped
        ex.scope["headers"] = [(k, v) for k, v in ex.scope.get("headers") or [] if k.lower() not in stripped]
        ex.extra_headers.extend(hints)

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        pseudonymiser = self.pseudonymiser
        document = ex.request_json
        replaced: list[tuple[int, str | int]] = []  # the places given a pseudonym (see Exchange)
        if self.top_keys is not None and type(document) is dict:
            pseudonymised, truncated = self.top_keys
            for key in pseudonymised:
                value = document.get(key)
                if value is not None and not isinstance(value, CONTAINERS):
                    document[key] = pseudonymiser.pseudonym(value, self.pseudonym_scope)
                    replaced.append((id(document), key))
            ex.request_replaced = frozenset(replaced)
            for key in truncated:
                if key in document:
                    value = document[key]
                    document[key] = truncate_ip(value) if isinstance(value, str) else None
            ex.request_changed = True
            return
        for selector in self.pseudonymise:
            for parent, key in selector.places(ex.request_json):  # `locations` as (container, key)
                value = parent[key]
                if value is not None and not isinstance(value, CONTAINERS):
                    parent[key] = pseudonymiser.pseudonym(value, self.pseudonym_scope)
                    replaced.append((id(parent), key))
        ex.request_replaced = frozenset(replaced)
        for selector in self.truncate:
            for parent, key in selector.places(ex.request_json):
                value = parent[key]
                parent[key] = truncate_ip(value) if isinstance(value, str) else None
        for selector in self.drop:
            for location in selector.find(ex.request_json):  # `locations` as a list
                location.delete()
        ex.request_changed = True


def _top_keys(selectors: list[Selector]) -> tuple[str, ...] | None:
    """The keys of selectors that each name one top-level key; None when any reaches deeper."""
    keys = []
    for selector in selectors:
        plain = selector.plain_path
        if plain is None or plain[0]:
            return None
        keys.append(plain[1])
    return tuple(keys)


def factory(services: Services) -> StepFactory:
    consent = ConsentResolver(services.consent, services.access, services.policy)

    def tracking(spec: RouteSpec) -> Step | None:
        if spec.tracking is None:
            return None
        return TrackingGate(
            spec.tracking,
            policy=services.policy,
            consent=consent,
            pseudonymiser=services.fields.pseudonymiser,
            metrics=services.metrics,
        )

    return tracking
