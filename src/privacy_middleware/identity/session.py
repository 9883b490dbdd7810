"""A shop session cookie resolved by the shop itself: an HTTP "who am I" call with that cookie.

Works for any shop that keeps its customers in a server-side session (Django, Oscar, WooCommerce,
Medusa): the middleware forwards only the session cookie to the shop's who-am-I endpoint — an
absolute URL, or a path answered by the wrapped app (in-process, or the upstream behind the proxy)
— and reads the account id from the JSON answer. The answer is cached under a keyed hash of the
cookie for a bounded time and dropped when the caller uses one of the policy's logout routes.

200 with an id: that customer (scopes, when the answer has them, map to recipients as token scopes
do). 200 without an id, 401 or 403: not signed in. Anything else: 503 `identity_unavailable`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import httpx

from ..context import Principal
from .base import CallerRequest, unavailable
from .cache import KeyedCache
from .jwt import TokenVerifier

logger = logging.getLogger("privacy_middleware.identity")

# A "not signed in" answer is cached only briefly: the shop may sign the same cookie in at any time.
ANONYMOUS_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Resolved:
    principal: Principal | None


def _field(answer: dict[str, Any], path: str) -> Any:
    value: Any = answer
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class SessionWhoAmIProvider:
    name = "session"

    def __init__(
        self,
        whoami_url: str,
        *,
        cookie: str,
        verifier: TokenVerifier,
        http: httpx.AsyncClient,
        cache: KeyedCache[Resolved],
        logout_routes: Collection[tuple[str, str]] = (),
        subject_field: str = "id",
        scopes_field: str = "scopes",
        cache_seconds: float = 60.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.whoami_url = whoami_url
        self.cookie_name = cookie
        self.verifier = verifier
        self.cache = cache
        self.logout_routes = frozenset(logout_routes)
        self.subject_field = subject_field
        self.scopes_field = scopes_field
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self.clock = clock
        self._absolute = whoami_url.startswith(("http://", "https://"))
        self.http: httpx.AsyncClient | None = http if self._absolute else None

    def bind_app(self, app: Any) -> None:
        """A path-only who-am-I URL is answered by the wrapped app itself (never through the middleware)."""
        if not self._absolute and self.http is None:
            self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop")

    async def close(self) -> None:
        if not self._absolute and self.http is not None:
            await self.http.aclose()

    async def resolve(self, request: CallerRequest) -> Principal | None:
        cookie = request.cookie(self.cookie_name)
        if cookie is None:
            return None
        if request.route is not None and request.route in self.logout_routes:
            self.cache.drop(cookie)
            return (await self._ask(cookie, request)).principal
        cached = self.cache.get(cookie)
        if cached is not None:
            return cached.principal
        resolved = await self._ask(cookie, request)
        seconds = self.cache_seconds if resolved.principal is not None else min(self.cache_seconds, ANONYMOUS_SECONDS)
        self.cache.put(cookie, resolved, until=self.clock() + seconds)
        return resolved.principal

    async def _ask(self, cookie: str, request: CallerRequest) -> Resolved:
        if self.http is None:
            raise unavailable(self.name)  # a path URL but no wrapped app bound: a wiring mistake
        headers = {"cookie": f"{self.cookie_name}={cookie}", "accept": "application/json"}
        host = request.header(b"host")
        if host and not self._absolute:
            headers["host"] = host.decode("latin-1")
        try:
            response = await self.http.get(self.whoami_url, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            logger.warning("session who-am-I call failed: %s", type(exc).__name__)
            raise unavailable(self.name) from None
        if response.status_code in (401, 403):
            return Resolved(None)
        if response.status_code != 200:
            logger.warning("session who-am-I answered HTTP %d", response.status_code)
            raise unavailable(self.name)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise unavailable(self.name)
        subject = _field(answer, self.subject_field)
        if subject is None or subject == "" or isinstance(subject, bool | dict | list):
            return Resolved(None)
        scopes = _field(answer, self.scopes_field) if self.scopes_field else None
        claims: dict[str, Any] = {"sub": str(subject)}
        if isinstance(scopes, list | str):
            claims[self.verifier.identity.scope_claim] = scopes
        return Resolved(self.verifier.principal_from_claims(claims))
