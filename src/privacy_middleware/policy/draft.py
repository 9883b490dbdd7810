"""`policy draft`: a commented first policy, written from the shop's own description of itself.

Sources: an OpenAPI 3 document (FastAPI, DRF with drf-spectacular, any generator), a GraphQL
introspection result (Saleor-style schemas), the routes of an in-process Starlette/FastAPI app, and
example payloads (a recorded request or response body). Fields are recognised by name and format
(`lexicon.py`); routes are recognised as logins, registrations, logouts, account closures and likely
tracking endpoints by their path and body.

It proposes only. The draft starts in report-only mode (nothing is enforced until a person switches
`mode` to "enforce"), every proposal carries its reason as a comment, and every route it could not
classify is listed for a person to decide.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import tomlkit
from tomlkit.items import Table

from .lexicon import Suggestion, classify, is_personal_object, words

MAX_DEPTH = 12
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
PARAMETER_RE = re.compile(r"\{[^{}/]+\}")
LOGIN_WORDS = {"login", "signin", "logon", "authenticate", "anmelden", "connexion", "iniciar", "登录"}
REGISTER_WORDS = {"register", "registration", "signup", "join", "registrieren", "inscription", "registro", "注册"}
LOGOUT_WORDS = {"logout", "signout", "logoff", "abmelden", "deconnexion", "退出"}
TRACKING_WORDS = {"track", "tracking", "collect", "events", "event", "analytics", "beacon", "pixel", "telemetry"}
PASSWORD_WORDS = {"password", "passwd", "pwd", "passwort", "motdepasse", "contrasena", "密码"}
SELF_WORDS = {"me", "self", "account", "profile", "myaccount"}
# A body at the root of these routes is about a person: its `id` names the subject, its `name` is theirs.
PERSON_ROUTE_WORDS = SELF_WORDS | {"customer", "customers", "user", "users", "member", "members", "kunde", "kunden"}
ID_NAMES = {"id", "pk", "uuid"}


@dataclass(frozen=True, slots=True)
class DraftField:
    select: str
    suggestion: Suggestion


@dataclass(slots=True)
class DraftBody:
    records: str = "$"
    subject: str = ""
    fields: list[DraftField] = field(default_factory=list)
    personal_objects: list[str] = field(default_factory=list)
    # Top-level keys of the body (login username, minors' birth date).
    keys: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DraftRoute:
    method: str
    path: str
    request: DraftBody | None = None
    response: DraftBody | None = None
    kind: str = "data"  # data | login | registration | logout | account_closure | tracking
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)


@dataclass(slots=True)
class Draft:
    name: str
    source: str
    routes: list[DraftRoute] = field(default_factory=list)
    undecided: list[tuple[str, str, str]] = field(default_factory=list)

    def fields_found(self) -> set[tuple[str, str, str, str]]:
        """(method, path, request|response, selector) of every proposed field."""
        found = set()
        for route in self.routes:
            for side, body in (("request", route.request), ("response", route.response)):
                for item in body.fields if body else []:
                    found.add((route.method, route.path, side, item.select))
        return found


# --- Reading bodies -----------------------------------------------------------------------------


def _child(select: str, key: str) -> str:
    part = f".{key}" if IDENTIFIER_RE.match(key) else "['" + key.replace("'", "\\'") + "']"
    return f"{select}{part}" if select else part.lstrip(".")


class SchemaReader:
    """Walks JSON Schemas of an OpenAPI document ($ref, allOf/oneOf/anyOf, arrays) into field rules."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, schema: Any, seen: frozenset[str] = frozenset()) -> tuple[dict[str, Any], frozenset[str]]:
        while isinstance(schema, dict) and "$ref" in schema:
            ref = str(schema["$ref"])
            if ref in seen or not ref.startswith("#/"):
                return {}, seen
            seen = seen | {ref}
            target: Any = self.document
            for part in ref[2:].split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
            schema = target
        return (schema if isinstance(schema, dict) else {}), seen

    def properties(self, schema: dict[str, Any], seen: frozenset[str]) -> Iterator[tuple[str, Any]]:
        for key in ("allOf", "oneOf", "anyOf"):
            for part in schema.get(key, []) or []:
                resolved, inner = self.resolve(part, seen)
                yield from self.properties(resolved, inner)
        for name, sub in (schema.get("properties") or {}).items():
            yield str(name), sub

    def body(self, schema: Any, root: list[str] | None = None) -> DraftBody:
        resolved, seen = self.resolve(schema)
        body = DraftBody()
        if resolved.get("type") == "array" or "items" in resolved:
            body.records = "$[*]"
            resolved, seen = self.resolve(resolved.get("items", {}), seen)
        else:
            lists = [
                (name, sub)
                for name, sub in self.properties(resolved, seen)
                if self.resolve(sub, seen)[0].get("type") == "array"
            ]
            records = [(n, s) for n, s in lists if self._has_personal(self.resolve(s, seen)[0].get("items", {}), seen)]
            if len(records) == 1 and not any(
                classify(n, []) for n, _ in self.properties(resolved, seen) if n != records[0][0]
            ):
                name, sub = records[0]
                body.records = f"$.{name}[*]" if IDENTIFIER_RE.match(name) else f"$['{name}'][*]"
                resolved, seen = self.resolve(self.resolve(sub, seen)[0].get("items", {}), seen)
        body.keys = [name for name, _ in self.properties(resolved, seen)]
        self._walk(resolved, seen, "", root or [], body, 0)
        return body

    def _has_personal(self, schema: Any, seen: frozenset[str], depth: int = 0) -> bool:
        resolved, seen = self.resolve(schema, seen)
        if depth > MAX_DEPTH:
            return False
        for name, sub in self.properties(resolved, seen):
            if classify(name, []) or self._has_personal(sub, seen, depth + 1):
                return True
        return False

    def _walk(
        self,
        schema: dict[str, Any],
        seen: frozenset[str],
        select: str,
        ancestors: list[str],
        body: DraftBody,
        depth: int,
    ) -> None:
        if depth > MAX_DEPTH:
            return
        for name, sub in self.properties(schema, seen):
            resolved, inner = self.resolve(sub, seen)
            path = _child(select, name)
            kind = resolved.get("type")
            if kind == "object" or "properties" in resolved or "allOf" in resolved:
                if is_personal_object(name) and path not in body.personal_objects:
                    body.personal_objects.append(path)
                self._walk(resolved, inner, path, [*ancestors, name], body, depth + 1)
                continue
            if kind == "array":
                items, item_seen = self.resolve(resolved.get("items", {}), inner)
                if items.get("type") == "object" or "properties" in items:
                    self._walk(items, item_seen, f"{path}[*]", [*ancestors, name], body, depth + 1)
                    continue
            example = resolved.get("example", (resolved.get("examples") or [None])[0])
            suggestion = _classify(name, ancestors, depth, fmt=str(resolved.get("format", "")), example=example)
            if suggestion is not None:
                body.fields.append(DraftField(path, suggestion))
        _subject(body)


def _subject(body: DraftBody) -> None:
    ids = [f.select for f in body.fields if f.suggestion.category == "user.id" and "." not in f.select]
    if ids and not body.subject:
        body.subject = ids[0]


def _classify(
    name: str, ancestors: list[str], depth: int, *, fmt: str = "", example: object = None
) -> Suggestion | None:
    if depth == 0 and ancestors and name.casefold() in ID_NAMES:
        return Suggestion("user.id", "keep", f"'{name}' of a person's record: the account id names the subject")
    return classify(name, ancestors, fmt=fmt, example=example)


def root_ancestors(path: str) -> list[str]:
    """A person's own record (`/me`, `/customers/{id}`) makes its root a personal object."""
    return ["customer"] if _path_words(path) & PERSON_ROUTE_WORDS else []


def body_from_example(payload: Any, root: list[str] | None = None) -> DraftBody:
    """Field rules from one real payload (a recorded request or response body)."""
    body = DraftBody()
    ancestors = root or []
    record = payload
    if isinstance(payload, list):
        body.records, record = "$[*]", payload[0] if payload else {}
    elif isinstance(payload, dict):
        lists = [k for k, v in payload.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        others = [k for k in payload if k not in lists and classify(k, [], example=payload[k])]
        if len(lists) == 1 and not others:
            body.records = f"$.{lists[0]}[*]" if IDENTIFIER_RE.match(lists[0]) else f"$['{lists[0]}'][*]"
            record = payload[lists[0]][0]
    if isinstance(record, dict):
        body.keys = list(record)
        _walk_example(record, "", ancestors, body, 0)
    _subject(body)
    return body


def _walk_example(node: dict[str, Any], select: str, ancestors: list[str], body: DraftBody, depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    for name, value in node.items():
        path = _child(select, name)
        if isinstance(value, dict):
            if is_personal_object(name) and path not in body.personal_objects:
                body.personal_objects.append(path)
            _walk_example(value, path, [*ancestors, name], body, depth + 1)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            _walk_example(value[0], f"{path}[*]", [*ancestors, name], body, depth + 1)
        else:
            suggestion = _classify(name, ancestors, depth, example=value)
            if suggestion is not None:
                body.fields.append(DraftField(path, suggestion))


# --- Reading whole descriptions -----------------------------------------------------------------


def _path_words(path: str) -> set[str]:
    return {w for segment in path.split("/") if not segment.startswith("{") for w in words(segment)} | {
        "".join(words(segment)) for segment in path.split("/")
    }


def classify_route(route: DraftRoute) -> None:
    """Login, registration, logout, account closure or tracking, from the path and the body."""
    found = _path_words(route.path)
    keys = {"".join(words(k)) for k in (route.request.keys if route.request else [])}
    if route.method == "POST" and found & LOGIN_WORDS and keys & PASSWORD_WORDS:
        route.kind = "login"
    elif route.method == "POST" and found & REGISTER_WORDS:
        route.kind = "registration"
    elif route.method == "POST" and found & LOGOUT_WORDS:
        route.kind = "logout"
    elif route.method == "DELETE" and found & SELF_WORDS and "{" not in route.path:
        route.kind = "account_closure"
    elif route.method == "POST" and found & TRACKING_WORDS:
        route.kind = "tracking"


def _finish(draft: Draft, candidates: Iterable[DraftRoute], described: bool) -> Draft:
    for route in candidates:
        classify_route(route)
        has_fields = any(b and b.fields for b in (route.request, route.response))
        if has_fields or route.kind != "data":
            draft.routes.append(route)
        elif route.method in {"POST", "PUT", "PATCH"} and (not described or route.request is None):
            draft.undecided.append((route.method, route.path, "its request body is not described"))
        elif not described:
            draft.undecided.append((route.method, route.path, "its response is not described"))
    return draft


def from_openapi(document: dict[str, Any], name: str = "") -> Draft:
    reader = SchemaReader(document)
    title = name or str((document.get("info") or {}).get("title") or "My shop")
    routes = []
    for path, item in (document.get("paths") or {}).items():
        for method in HTTP_METHODS:
            operation = (item or {}).get(method)
            if not isinstance(operation, dict):
                continue
            route = DraftRoute(method.upper(), _template(path))
            request = _json_schema((operation.get("requestBody") or {}).get("content"))
            if request is not None:
                route.request = reader.body(request, root_ancestors(path))
            for status in ("200", "201", "2XX", "default"):
                content = ((operation.get("responses") or {}).get(status) or {}).get("content")
                response = _json_schema(content)
                if response is not None:
                    route.response = reader.body(response, root_ancestors(path))
                    break
            routes.append(route)
    return _finish(Draft(title, "OpenAPI document"), routes, described=True)


def _template(path: str) -> str:
    """DRF and Django spellings of parameters (`{pk}`, `<int:pk>`) become `{name}`."""
    return re.sub(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>", r"{\1}", path)


def _json_schema(content: Any) -> Any:
    if not isinstance(content, dict):
        return None
    for media, value in content.items():
        if media.split(";")[0].strip() in {"application/json", "application/problem+json", "*/*"} or media.endswith(
            "+json"
        ):
            return (value or {}).get("schema")
    return None


def from_graphql(introspection: dict[str, Any], path: str = "/graphql", name: str = "") -> Draft:
    """A GraphQL schema: personal fields of object types reachable from Query and Mutation."""
    schema = (introspection.get("data") or introspection).get("__schema") or {}
    types = {t["name"]: t for t in schema.get("types") or [] if isinstance(t, dict) and t.get("name")}

    def unwrap(ref: Any) -> str:
        while isinstance(ref, dict) and ref.get("ofType"):
            ref = ref["ofType"]
        return str(ref.get("name", "")) if isinstance(ref, dict) else ""

    def walk(type_name: str, select: str, ancestors: list[str], body: DraftBody, depth: int, seen: set[str]) -> None:
        kind = types.get(type_name) or {}
        if depth > 4 or type_name in seen:
            return
        for item in kind.get("fields") or kind.get("inputFields") or []:
            name = str(item.get("name", ""))
            target = unwrap(item.get("type"))
            path = _child(select, name)
            inner = types.get(target) or {}
            if inner.get("kind") in {"OBJECT", "INPUT_OBJECT"}:
                if is_personal_object(name) and path not in body.personal_objects:
                    body.personal_objects.append(path)
                walk(target, path, [*ancestors, name], body, depth + 1, seen | {type_name})
                continue
            suggestion = classify(name, ancestors)
            if suggestion is not None:
                body.fields.append(DraftField(path, suggestion))

    draft = Draft(name or "GraphQL shop", "GraphQL introspection")
    response = DraftBody()
    for root in ("queryType", "mutationType"):
        root_name = (schema.get(root) or {}).get("name")
        if root_name:
            walk(str(root_name), "", [], response, 0, set())
    route = DraftRoute("POST", path, response=response if response.fields else None)
    route.notes.append("GraphQL: rules apply under `data`; check each selector against a real response")
    draft.routes.append(route)
    return draft


def from_app(app: Any, name: str = "") -> Draft:
    """An in-process app: FastAPI's own OpenAPI document, else the Starlette routes (paths only)."""
    openapi = getattr(app, "openapi", None)
    if callable(openapi):
        return from_openapi(openapi(), name)
    routes = []
    for route in getattr(getattr(app, "router", app), "routes", []) or []:
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or []):
            if path and method.lower() in HTTP_METHODS:
                routes.append(DraftRoute(method, str(path)))
    return _finish(Draft(name or "My shop", "the app's routes"), routes, described=False)


def add_example(draft: Draft, method: str, path: str, side: str, payload: Any) -> None:
    """Merge a recorded body into the draft (routes without a schema, or a check of one)."""
    route = next((r for r in draft.routes if r.key == (method, path)), None)
    if route is None:
        route = DraftRoute(method, path)
        draft.routes.append(route)
    draft.undecided = [u for u in draft.undecided if (u[0], u[1]) != (method, path)]
    body = body_from_example(payload, root_ancestors(path))
    setattr(route, side, body)
    classify_route(route)


# --- Writing the draft --------------------------------------------------------------------------


def render(draft: Draft, *, today: dt.date | None = None) -> str:
    """The draft as a commented TOML policy that `policy check` accepts."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"DRAFT policy for {draft.name}, proposed from {draft.source}."))
    doc.add(tomlkit.comment('Nothing is enforced yet: mode = "report" records what enforcement WOULD do.'))
    doc.add(tomlkit.comment('Review every proposal (reasons in the comments), then switch mode to "enforce".'))
    doc.add(tomlkit.nl())
    info = tomlkit.table()
    info.add("name", draft.name)
    info.add("version", "draft-1")
    info.add("effective_date", today or dt.date.today())
    info.add("mode", "report")
    doc.add("policy", info)

    categories = _categories(draft)
    table = tomlkit.table()
    for category in sorted(categories):
        described = tomlkit.inline_table()
        described.update({"description": categories[category]})
        if category.startswith(("user.financial", "user.government_id")):
            described["sensitive"] = True
        table.add(category, described)
    doc.add("categories", table)

    purposes = tomlkit.table()
    for purpose, basis in (("order_fulfilment", "contract"), ("security", "legitimate_interest")):
        declared = tomlkit.table()
        declared.add("legal_basis", basis)
        purposes.add(purpose, declared)
    if any(r.kind == "tracking" for r in draft.routes):
        analytics = tomlkit.table()
        analytics.add("legal_basis", "consent")
        analytics.add("consent", "opt_in")
        analytics.add("cookie_class", "analytics")
        purposes.add("analytics", analytics)
    doc.add("purposes", purposes)

    routes = tomlkit.aot()
    for route in draft.routes:
        has_fields = any(body is not None and body.fields for body in (route.request, route.response))
        if route.kind != "tracking" and has_fields:
            routes.append(_route_table(route))
    if routes:
        doc.add("routes", routes)

    tracking = [r for r in draft.routes if r.kind == "tracking"]
    if tracking:
        section = tomlkit.table()
        items = tomlkit.aot()
        for route in tracking:
            entry = tomlkit.table()
            entry.add(tomlkit.comment("a likely tracking endpoint: passes only with analytics consent"))
            entry.add("method", route.method)
            entry.add("path", route.path)
            entry.add("purpose", "analytics")
            ids = [f.select for f in (route.request.fields if route.request else []) if "." not in f.select]
            pseudonymise = [s for s in ids if s and _category_of(route, s).startswith(("user.id", "user.device.id"))]
            ips = [s for s in ids if _category_of(route, s) == "user.device.ip_address"]
            if pseudonymise:
                entry.add("pseudonymise", pseudonymise)
            if ips:
                entry.add("truncate_ip", ips)
            items.append(entry)
        section.add("routes", items)
        doc.add("tracking", section)

    audit = _audit(draft)
    if audit is not None:
        doc.add("audit", audit)
    minors = _minors(draft)
    if minors is not None:
        doc.add("minors", minors)

    text = tomlkit.dumps(doc)
    if draft.undecided:
        lines = ["", "# --- Routes to decide: not classified, nothing proposed ---------------------------"]
        lines += [f"# {method} {path}: {why}" for method, path, why in draft.undecided]
        text += "\n".join(lines) + "\n"
    return text


def _category_of(route: DraftRoute, select: str) -> str:
    for item in route.request.fields if route.request else []:
        if item.select == select:
            return item.suggestion.category
    return ""


def _categories(draft: Draft) -> dict[str, str]:
    found: dict[str, str] = {}
    for route in draft.routes:
        for body in (route.request, route.response):
            for item in body.fields if body else []:
                found.setdefault(item.suggestion.category, item.suggestion.category.split(".")[-1].replace("_", " "))
    return found


def _route_table(route: DraftRoute) -> Table:
    entry = tomlkit.table()
    for note in route.notes:
        entry.add(tomlkit.comment(note))
    entry.add("method", route.method)
    entry.add("path", route.path)
    entry.add("purpose", "order_fulfilment")
    for side, body in (("request", route.request), ("response", route.response)):
        if body is None or not body.fields:
            continue
        part = tomlkit.table()
        if body.records != "$":
            part.add("records", body.records)
        if body.subject:
            part.add("subject", body.subject)
        if body.personal_objects:
            part.add("personal_objects", body.personal_objects)
        rules = tomlkit.array()
        rules.multiline(True)
        for item in body.fields:
            rule = tomlkit.inline_table()
            rule.update({"select": item.select, "category": item.suggestion.category})
            if side == "request":
                rule["transform"] = item.suggestion.transform
                if item.suggestion.validate_as:
                    rule["validate_as"] = item.suggestion.validate_as
                if item.suggestion.companions:
                    rule["companions"] = list(item.suggestion.companions)
            rules.add_line(rule, comment=item.suggestion.why)
        part.add("fields", rules)
        entry.add(side, part)
    return entry


def _audit(draft: Draft) -> Table | None:
    logins = tomlkit.array()
    accounts = tomlkit.array()
    for route in draft.routes:
        keys = route.request.keys if route.request else []
        if route.kind == "login":
            username = next(
                (k for k in keys if classify(k, []) and classify(k, []).category == "user.contact.email"),  # type: ignore[union-attr]
                next((k for k in keys if "user" in words(k) or "username" in "".join(words(k))), "email"),
            )
            login = tomlkit.inline_table()
            login.update({"method": route.method, "path": route.path, "username_field": username})
            logins.append(login)
        elif route.kind in {"registration", "logout", "account_closure"}:
            account = tomlkit.inline_table()
            account.update({"method": route.method, "path": route.path, "event": route.kind})
            accounts.append(account)
    if not logins and not accounts:
        return None
    table = tomlkit.table()
    if logins:
        table.add(tomlkit.comment("login routes: login history, suspicious-login detection and lockout"))
        table.add("logins", logins)
    if accounts:
        table.add("account_routes", accounts)
    return table


def _minors(draft: Draft) -> Table | None:
    routes = tomlkit.array()
    for route in draft.routes:
        if route.kind != "registration" or route.request is None:
            continue
        for item in route.request.fields:
            if item.suggestion.category == "user.demographic.birth_date" and "." not in item.select:
                entry = tomlkit.inline_table()
                entry.update({"method": route.method, "path": route.path, "birth_date": item.select})
                routes.append(entry)
    if not routes:
        return None
    table = tomlkit.table()
    table.add(tomlkit.comment("set the minimum age your notice promises (0 turns the check off)"))
    table.add("minimum_age", 16)
    table.add("routes", routes)
    return table


# --- Measuring a draft against a reviewed policy ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coverage:
    declared: int
    found: int
    missed: list[str]

    @property
    def share(self) -> float:
        return self.found / self.declared if self.declared else 1.0


def _route_shape(path: str) -> str:
    return PARAMETER_RE.sub("{}", path)


def coverage(draft: Draft, policy: Any) -> Coverage:
    """Share of the reviewed policy's protected fields (request fields not kept in clear, and
    response fields on routes with a response plan) that the draft found at the same place."""
    # A route is the same whatever its parameters are called (`{pk}` in the policy, `{id}` in the schema).
    found = {(m, _route_shape(p), side, s) for m, p, side, s in draft.fields_found()}
    shapes = policy.shapes
    declared: list[tuple[str, str, str, str]] = []
    for route in policy.routes:
        for side in ("request", "response"):
            body = getattr(route, side)
            if body is None:
                continue
            rules = [*(shapes[body.shape].fields if body.shape else []), *body.fields]
            # Card companions (`number_last4`, `number_brand`) are written by the middleware, not the shop.
            cards = {r.select for r in rules if r.category.endswith("card.number")}
            companions = {f"{card}_{kind}" for card in cards for kind in ("last4", "brand")}
            for rule in rules:
                if (side == "request" and rule.transform == "keep") or rule.select in companions:
                    continue
                declared.append((route.method, route.path, side, rule.select))
    hits = [d for d in declared if (d[0], _route_shape(d[1]), d[2], d[3]) in found]
    missed = [f"{m} {p} {side} {s}" for m, p, side, s in declared if (m, _route_shape(p), side, s) not in found]
    return Coverage(len(declared), len(hits), missed)
