"""Compile a validated policy into a route table: `(method, path) -> RouteSpec`.

Everything the policy says about one route (field rules, tracking, login, account events, minors)
is gathered into one RouteSpec at start-up, with selectors compiled. A request on a route without
a spec costs one dict lookup (static paths) or one regex match (templated paths).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .load import PATH_PARAM_RE
from .schema import (
    AccountRoute,
    BodyRules,
    FieldRule,
    FreeTextRule,
    GuestCheckout,
    LoginRoute,
    MinorsRoute,
    Policy,
    Route,
    TrackingRoute,
)
from .selectors import Selector, compile_selector


@dataclass(frozen=True, slots=True)
class CompiledField:
    rule: FieldRule
    selector: Selector


@dataclass(frozen=True, slots=True)
class CompiledBody:
    rules: BodyRules
    records: Selector
    subject: Selector | None
    fields: tuple[CompiledField, ...]
    personal_objects: tuple[Selector, ...]
    # The shape's record key (the shop's own id of a record) and the shape's name, which names the
    # kind of record whose owners are bound (policy.schema.Shape.record_key).
    record_key: Selector | None = None
    kind: str = ""


# What `plain_paths` answered per body: the policy's bodies are a fixed set (compiled at start-up).
_PLAIN_PATHS: dict[int, tuple[CompiledBody, tuple[tuple[tuple[str, ...], str], ...] | None]] = {}


def plain_paths(body: CompiledBody) -> tuple[tuple[tuple[str, ...], str], ...] | None:
    """Every field rule's (keys to the parent, last key) when all are plain key paths (the common
    case, followed by dict look-ups on the request path), else None. Kept per body (bounded)."""
    kept = _PLAIN_PATHS.get(id(body))
    if kept is not None and kept[0] is body:
        return kept[1]
    found = [rule.selector.plain_path for rule in body.fields]
    paths = None if any(path is None for path in found) else tuple(path for path in found if path is not None)
    if len(_PLAIN_PATHS) < 1024:
        _PLAIN_PATHS[id(body)] = (body, paths)
    return paths


@dataclass(frozen=True, slots=True)
class CompiledFreeText:
    rule: FreeTextRule
    selector: Selector


@dataclass(slots=True)
class RouteSpec:
    """What the policy says about one (method, path template)."""

    method: str
    template: str
    route: Route | None = None
    request: CompiledBody | None = None
    response: CompiledBody | None = None
    free_text: tuple[CompiledFreeText, ...] = ()
    tracking: TrackingRoute | None = None
    login: LoginRoute | None = None
    account: AccountRoute | None = None
    minors: MinorsRoute | None = None
    minors_birth_date: Selector | None = None
    guest_checkout: GuestCheckout | None = None
    names: list[str] = field(default_factory=list)


def expand_shape(rules: BodyRules, policy: Policy) -> BodyRules:
    """A body's own rules on top of its named shape's."""
    if not rules.shape:
        return rules
    shape = policy.shapes[rules.shape]
    return rules.model_copy(
        update={
            "subject": rules.subject or shape.subject,
            "fields": [*shape.fields, *rules.fields],
            "personal_objects": [*shape.personal_objects, *rules.personal_objects],
        }
    )


def _compile_body(rules: BodyRules | None, policy: Policy) -> CompiledBody | None:
    if rules is None:
        return None
    shape = policy.shapes.get(rules.shape) if rules.shape else None
    rules = expand_shape(rules, policy)
    return CompiledBody(
        rules=rules,
        records=compile_selector(rules.records),
        subject=compile_selector(rules.subject) if rules.subject else None,
        fields=tuple(CompiledField(rule, compile_selector(rule.select)) for rule in rules.fields),
        personal_objects=tuple(compile_selector(s) for s in rules.personal_objects),
        record_key=compile_selector(shape.record_key) if shape is not None and shape.record_key else None,
        kind=rules.shape,
    )


def compile_shapes(policy: Policy) -> dict[str, CompiledBody]:
    """Every named shape as a body of its own (a whole record of that shape), compiled once.

    Used where records are handled outside any route: subject-rights export and erasure.
    """
    bodies: dict[str, CompiledBody] = {}
    for name in policy.shapes:
        body = _compile_body(BodyRules(shape=name, unknown_fields="keep"), policy)
        assert body is not None
        bodies[name] = body
    return bodies


def _template_regex(template: str, prefix: str) -> str:
    pattern = ""
    last = 0
    for match in PATH_PARAM_RE.finditer(template):
        pattern += re.escape(template[last : match.start()])
        greedy = match.group(0).endswith(":path}")
        pattern += f"(?P<{prefix}{match.group(1)}>{'.+' if greedy else '[^/]+'})"
        last = match.end()
    return pattern + re.escape(template[last:])


def _first_segment(template: str) -> str:
    """The literal first path segment, or "{" when the template starts with a parameter."""
    end = template.find("/", 1)
    segment = template[1:end] if end > 0 else template[1:]
    return "{" if "{" in segment else segment


T = TypeVar("T")
U = TypeVar("U")


class RouteTable(Generic[T]):
    """Matches a request to its entry: static paths by dict, templated ones by one regex per method."""

    def __init__(self, entries: Iterable[tuple[str, str, T]]) -> None:
        self._static: dict[tuple[str, str], T] = {}
        buckets: dict[tuple[str, str], list[tuple[str, T]]] = {}
        for method, template, value in entries:
            if PATH_PARAM_RE.search(template):
                buckets.setdefault((method, _first_segment(template)), []).append((template, value))
            else:
                self._static[(method, template)] = value
        # Templated routes are bucketed by method and literal first segment, so an unplanned path
        # costs dict lookups only; one alternation regex per bucket decides among the candidates.
        self._templated: dict[tuple[str, str], tuple[re.Pattern[str], list[tuple[str, T]]]] = {}
        for key, items in buckets.items():
            # More literal characters first, so `/orders/export` wins over `/orders/{id}`.
            items.sort(key=lambda item: (-len(PATH_PARAM_RE.sub("", item[0])), item[0]))
            alternation = "|".join(
                f"(?P<r{i}>{_template_regex(template, f'p{i}_')})" for i, (template, _) in enumerate(items)
            )
            self._templated[key] = (re.compile(f"^(?:{alternation})/?$"), items)
        self.size = len(self._static) + sum(len(v[1]) for v in self._templated.values())

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        value = self._static.get((method, path))
        if value is not None:
            return value, {}
        if path[-1:] == "/" and len(path) > 1:
            value = self._static.get((method, path[:-1]))
            if value is not None:
                return value, {}
        if not self._templated:
            return None
        end = path.find("/", 1)
        segment = path[1:end] if end > 0 else path[1:]
        for key in ((method, segment), (method, "{")):
            compiled = self._templated.get(key)
            if compiled is None:
                continue
            regex, values = compiled
            found = regex.match(path)
            if found is None:
                continue
            groups = found.groupdict()
            index = next(int(k[1:]) for k, v in groups.items() if k[0] == "r" and v is not None)
            prefix = f"p{index}_"
            params = {k[len(prefix) :]: v for k, v in groups.items() if k.startswith(prefix) and v is not None}
            return values[index][1], params
        return None

    def map(self, fn: Callable[[T], U | None]) -> RouteTable[U]:
        """A table of the same routes with transformed entries (None entries are left out)."""
        entries: list[tuple[str, str, U]] = []
        for (method, template), value in self._static.items():
            new = fn(value)
            if new is not None:
                entries.append((method, template, new))
        for (method, _), (_, values) in self._templated.items():
            for template, value in values:
                new = fn(value)
                if new is not None:
                    entries.append((method, template, new))
        return RouteTable(entries)

    def entries(self) -> list[T]:
        items = list(self._static.values())
        for _, values in self._templated.values():
            items.extend(value for _, value in values)
        return items


def compile_policy(policy: Policy) -> RouteTable[RouteSpec]:
    """Gather every section's statements about a route into one RouteSpec per (method, template)."""
    specs: dict[tuple[str, str], RouteSpec] = {}

    def spec_for(method: str, template: str, name: str) -> RouteSpec:
        key = (method, template)
        spec = specs.get(key)
        if spec is None:
            spec = specs[key] = RouteSpec(method, template)
        spec.names.append(name)
        return spec

    for route in policy.routes:
        spec = spec_for(route.method, route.path, "route")
        spec.route = route
        spec.request = _compile_body(route.request, policy)
        spec.response = _compile_body(route.response, policy)
        spec.free_text = tuple(CompiledFreeText(r, compile_selector(r.select)) for r in route.free_text)
    for tracked in policy.tracking.routes:
        spec_for(tracked.method, tracked.path, "tracking").tracking = tracked
    for login in policy.audit.logins:
        spec_for(login.method, login.path, "login").login = login
    for account in policy.audit.account_routes:
        spec_for(account.method, account.path, f"account:{account.event}").account = account
    for minors_route in policy.minors.routes:
        spec = spec_for(minors_route.method, minors_route.path, "minors")
        spec.minors = minors_route
        spec.minors_birth_date = compile_selector(minors_route.birth_date)
    for checkout in policy.guests.checkouts:
        spec_for(checkout.method, checkout.path, "guest_checkout").guest_checkout = checkout
    for order_route in policy.guests.order_routes:
        spec_for(order_route.method, order_route.path, "guest_order")
    return RouteTable((m, t, s) for (m, t), s in specs.items())


@dataclass(frozen=True, slots=True)
class OutboundHost:
    """A recipient's host: which of its endpoints the shop may call and what their bodies hold."""

    recipient: str
    endpoints: RouteTable[CompiledBody]


def compile_outbound(policy: Policy) -> dict[str, OutboundHost]:
    hosts: dict[str, OutboundHost] = {}
    for name, recipient in policy.recipients.items():
        entries = []
        for endpoint in recipient.endpoints:
            body = _compile_body(endpoint.request, policy)
            assert body is not None
            entries.append((endpoint.method, endpoint.path, body))
        table: RouteTable[CompiledBody] = RouteTable(entries)
        for host in recipient.hosts:
            hosts[host.lower()] = OutboundHost(name, table)
    return hosts
