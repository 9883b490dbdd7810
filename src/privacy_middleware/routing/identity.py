"""Route identity: which planned route a request really reaches, asked of the wrapped app's router.

The policy names routes by path template; the shop dispatches by its own router, which may reach
a planned handler through other spellings (Django REST Framework's `.json` aliases, a Starlette
route whose template differs from the policy's). A request whose path is not a planned template
is therefore asked of the app's own router (Starlette/FastAPI routes, Django's URL resolver); if
that router sends it to a planned handler, the plan applies. For any other app (and the reverse
proxy) the one canonicaliser (routing/canonical.py) places the spelling or refuses it.

Planned handlers are found once, at the first request, by resolving each planned template (with
sample parameter values) through the app's router.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

from ..policy.load import PATH_PARAM_RE
from ..types import Scope
from .canonical import AliasTable, ambiguous_path, is_plain

logger = logging.getLogger("privacy_middleware")

T = TypeVar("T")
Found = tuple[T, dict[str, str]]
SAMPLE_VALUES = ("1", "00000000-0000-4000-8000-000000000001", "a")


class HasSpec(Protocol):
    @property
    def spec(self) -> Any: ...


def sample_paths(template: str) -> Iterator[str]:
    """The template with each parameter filled by a sample value (tried in turn), with and without
    a trailing slash (Django projects usually end routes with one)."""
    for sample in SAMPLE_VALUES:
        path = PATH_PARAM_RE.sub(sample, template)
        yield path
        yield path.rstrip("/") + "/" if not path.endswith("/") else path.rstrip("/") or "/"


def rename_params(template: str, found: dict[str, Any]) -> dict[str, str]:
    """The router's parameters under the policy's names: by name when they agree, else in order."""
    names = [m.group(1) for m in PATH_PARAM_RE.finditer(template)]
    values = {k: str(v) for k, v in found.items() if k != "format"}
    if all(name in values for name in names):
        return {name: values[name] for name in names}
    return dict(zip(names, values.values(), strict=False))


class RouteIdentity(Protocol[T]):  # type: ignore[misc]
    """Places a request whose path is not literally planned; None when no plan applies."""

    kind: str

    def place(self, scope: Scope) -> Found[T] | None: ...

    def may_place(self, method: str) -> bool:
        """False only when `place` answers None for every request with this method, now and later."""
        ...


class Forwards(Protocol):
    """An app that forwards paths elsewhere (the reverse proxy) and refuses some spellings itself."""

    def can_forward(self, path: str) -> bool: ...


@dataclass
class CanonicalIdentity(Generic[T]):
    """For apps whose router cannot be asked (any ASGI app, the reverse proxy).

    `forwards` is the proxy's own check: a spelling placed on a plan that the proxy would refuse
    to forward is refused here (400 `ambiguous_path`) so that the refusal is not run through the
    plan's response filter as if it were the shop's answer.
    """

    table: AliasTable[T]
    kind: str = "canonical"
    forwards: Forwards | None = None

    def place(self, scope: Scope) -> Found[T] | None:
        path: str = scope["path"]
        raw = scope.get("raw_path")
        query: bytes = scope.get("query_string") or b""
        method: str = scope["method"]
        # Methods are case-sensitive in HTTP, but many routers compare them upper-cased.
        exact = method.isupper()
        if exact and is_plain(path) and (raw is None or raw == path.encode()) and b"rest_route=" not in query:
            return None
        found = self.table.place(method if exact else method.upper(), path, query)
        if found is not None and self.forwards is not None and not self.forwards.can_forward(path):
            raise ambiguous_path("a spelling the proxy does not forward")
        return found

    def may_place(self, method: str) -> bool:
        """Always asked: the canonicaliser places by path and query, whatever the method."""
        return True


# --- Starlette and FastAPI ---------------------------------------------------------------------


def _starlette_routes(app: Any) -> list[Any] | None:
    router = getattr(app, "router", None)
    routes = getattr(router, "routes", None) if router is not None else getattr(app, "routes", None)
    return list(routes) if isinstance(routes, list) else None


def _starlette_dispatch(routes: list[Any], scope: Scope) -> tuple[list[Any], dict[str, Any]] | None:
    """The chain (mounts, then the endpoint route) Starlette would run for a scope: first full match."""
    from starlette.routing import Match, Mount

    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:  # a converter refusing a value is no match
            continue
        if match is not Match.FULL:
            continue
        if isinstance(route, Mount):
            inner = _starlette_routes(unwrap(route.app))
            if inner is None:
                return None
            found = _starlette_dispatch(inner, {**scope, **child})
            return None if found is None else ([route, *found[0]], found[1])
        return [route], dict(child.get("path_params") or {})
    return None


def handler_id(route: Any) -> Any:
    """What a route runs: its endpoint (shared by routes registered for one handler; bound methods of
    one object compare equal), else the route itself."""
    endpoint = getattr(route, "endpoint", None)
    try:
        hash(endpoint)
    except TypeError:
        endpoint = None
    return id(route) if endpoint is None else endpoint


def _starlette_chains(routes: list[Any], prefix: list[Any]) -> Iterator[list[Any]]:
    """Each endpoint route with the mounts above it, in dispatch order."""
    from starlette.routing import Mount

    for route in routes:
        if isinstance(route, Mount):
            inner = _starlette_routes(unwrap(route.app))
            if inner is not None:
                yield from _starlette_chains(inner, [*prefix, route])
        else:
            yield [*prefix, route]


def _opaque_mount(routes: list[Any], scope: Scope) -> bool:
    """Whether Starlette's dispatch hands the scope to a mounted app with no router to ask (a plain
    ASGI app, another framework): that app routes the rest of the path by rules of its own."""
    from starlette.routing import Match, Mount

    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:
            continue
        if match is not Match.FULL:
            continue
        if not isinstance(route, Mount):
            return False
        inner = _starlette_routes(unwrap(route.app))
        return True if inner is None else _opaque_mount(inner, {**scope, **child})
    return False


def _chain_matches(chain: list[Any], scope: Scope) -> bool:
    from starlette.routing import Match

    for route in chain:
        try:
            match, child = route.matches(scope)
        except Exception:
            return False
        if match is not Match.FULL:
            return False
        scope = {**scope, **child}
    return True


@dataclass
class StarletteIdentity(Generic[T]):
    """Starlette and FastAPI: only the routes that run planned handlers are tried per request; the
    app's full dispatch then confirms that no earlier route catches the path first.

    A planned route behind a mounted app that has no router to ask (`Mount("/shop", app=...)`
    around a plain ASGI app) is placed by the canonicaliser, as for any router-less app, for the
    requests Starlette hands to that mount."""

    routes: list[Any]
    plans: list[T]
    kind: str = "starlette"
    aliases: Callable[[], AliasTable[T]] | None = None
    handlers: dict[tuple[Any, str], T] = field(default_factory=dict)
    chains: list[tuple[list[Any], str]] = field(default_factory=list)
    # the same chains by method: a request whose method runs no planned handler tries none
    by_method: dict[str, list[list[Any]]] = field(default_factory=dict)
    unmatched: list[T] = field(default_factory=list)
    opaque: list[T] = field(default_factory=list)
    canonical: CanonicalIdentity[T] | None = None
    _ready: bool = False

    def _index(self) -> None:
        for plan in self.plans:
            spec = plan.spec  # type: ignore[attr-defined]
            found = None
            for path in sample_paths(spec.template):
                found = _starlette_dispatch(self.routes, _probe(spec.method, path))
                if found is not None:
                    break
            if found is None:
                behind_mount = any(
                    _opaque_mount(self.routes, _probe(spec.method, p)) for p in sample_paths(spec.template)
                )
                (self.opaque if behind_mount else self.unmatched).append(plan)
                continue
            self.handlers.setdefault((handler_id(found[0][-1]), spec.method), plan)
        # Every route that runs a planned handler (FastAPI's stacked `@app.get("/o/{r}")` and
        # `@app.get("/o/{r}.json")` are two routes, one handler) is tried per request.
        for chain in _starlette_chains(self.routes, []):
            methods = getattr(chain[-1], "methods", None) or {"GET", "POST", "PUT", "PATCH", "DELETE"}
            for method in methods:
                if (handler_id(chain[-1]), method) in self.handlers:
                    self.chains.append((chain, method))
                    self.by_method.setdefault(method, []).append(chain)
        if self.opaque and self.aliases is not None:
            self.canonical = CanonicalIdentity(self.aliases())
        self._ready = True

    def _behind_mount(self, scope: Scope) -> Found[T] | None:
        if self.canonical is None or not _opaque_mount(self.routes, scope):
            return None
        return self.canonical.place(scope)

    def may_place(self, method: str) -> bool:
        """False when no route running a planned handler serves this method and no planned route sits
        behind a router-less mount: `place` then answers None for any path (the index is built once,
        from the routes the app had when this identity was made, and never changes)."""
        if not self._ready:
            self._index()
        return self.canonical is not None or method in self.by_method

    def place(self, scope: Scope) -> Found[T] | None:
        if not self._ready:
            self._index()
        method = scope["method"]
        chains = self.by_method.get(method)
        if chains is None or not any(_chain_matches(chain, scope) for chain in chains):
            return self._behind_mount(scope)
        found = _starlette_dispatch(self.routes, scope)
        if found is None:
            return self._behind_mount(scope)
        plan = self.handlers.get((handler_id(found[0][-1]), method))
        if plan is None:
            return None
        return plan, rename_params(plan.spec.template, found[1])  # type: ignore[attr-defined]


# --- Django (and Django REST Framework) ----------------------------------------------------------


def _is_django(app: Any) -> bool:
    return any(cls.__module__.startswith("django.core.handlers") for cls in type(app).__mro__)


@dataclass
class DjangoIdentity(Generic[T]):
    plans: list[T]
    kind: str = "django"
    handlers: dict[tuple[int, str], T] = field(default_factory=dict)
    unmatched: list[T] = field(default_factory=list)
    _ready_for: str | None = None

    def resolve(self, path: str) -> tuple[Any, dict[str, Any]] | None:
        from django.urls import Resolver404, get_resolver

        try:
            match = get_resolver().resolve(path)
        except Resolver404:
            return None
        return match.func, dict(match.kwargs)

    def may_place(self, method: str) -> bool:
        """Always asked: the handler index is rebuilt when the project's URLconf changes."""
        return True

    def _index(self) -> None:
        from django.conf import settings

        self.handlers.clear()
        self.unmatched.clear()
        for plan in self.plans:
            spec = plan.spec  # type: ignore[attr-defined]
            found = next((f for p in sample_paths(spec.template) if (f := self.resolve(p)) is not None), None)
            if found is None:
                self.unmatched.append(plan)
            else:
                self.handlers.setdefault((id(found[0]), spec.method), plan)
        self._ready_for = str(settings.ROOT_URLCONF)
        self._cached = lru_cache(maxsize=4096)(self.resolve)

    def place(self, scope: Scope) -> Found[T] | None:
        from django.conf import settings

        if self._ready_for != str(settings.ROOT_URLCONF):
            self._index()
        if not self.handlers:
            return None
        path: str = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        found = self._cached(path)
        if found is None:
            return None
        # Django's views (and DRF's) dispatch on the method lower-cased: `post` runs `create`.
        plan = self.handlers.get((id(found[0]), scope["method"].upper()))
        if plan is None:
            return None
        return plan, rename_params(plan.spec.template, found[1])  # type: ignore[attr-defined]


def _probe(method: str, path: str) -> Scope:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}


def unwrap(app: Any, depth: int = 8) -> Any:
    """The innermost app behind middleware objects that keep it in `.app`."""
    for _ in range(depth):
        if _is_django(app) or _starlette_routes(app) is not None:
            return app
        inner = getattr(app, "app", None)
        if inner is None or inner is app:
            return app
        app = inner
    return app


def identity_for(app: Any, plans: list[T], aliases: Callable[[], AliasTable[T]]) -> RouteIdentity[T]:
    """The app's own router when it can be asked, the canonicaliser otherwise."""
    inner = unwrap(app)
    if _is_django(inner):
        return DjangoIdentity(plans)
    routes = _starlette_routes(inner)
    if routes is not None:
        return StarletteIdentity(routes, plans, aliases=aliases)
    can_forward = getattr(inner, "can_forward", None)
    return CanonicalIdentity(aliases(), forwards=inner if callable(can_forward) else None)
