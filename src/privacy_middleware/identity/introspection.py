"""OAuth 2.0 token introspection (RFC 7662) for opaque bearer tokens.

The authorization server is asked once per token; an active answer is cached under a keyed hash of
the token until the token's `exp` (never longer than the configured bound). The answer's claims are
mapped to a Principal exactly as a JWT's are (`sub`/`client_id`, `scope`, recipient and purpose
claims). An inactive token is 401; a server that cannot answer is 503 `identity_unavailable`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..context import Principal
from .base import CallerRequest, unavailable
from .cache import KeyedCache
from .jwt import TokenVerifier, unauthorized

logger = logging.getLogger("privacy_middleware.identity")


class IntrospectionProvider:
    name = "introspection"
    bearer_only = True  # recognises a caller by the Authorization header alone

    def __init__(
        self,
        url: str,
        *,
        verifier: TokenVerifier,
        http: httpx.AsyncClient,
        cache: KeyedCache[dict[str, Any]],
        client_id: str | None = None,
        client_secret: str | None = None,
        max_cache_seconds: float = 300.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.verifier = verifier
        self.http = http
        self.cache = cache
        self.auth: httpx.Auth | None = httpx.BasicAuth(client_id, client_secret or "") if client_id else None
        self.max_cache_seconds = max_cache_seconds
        self.timeout = timeout
        self.clock = clock

    async def resolve(self, request: CallerRequest) -> Principal | None:
        token = request.bearer()
        if not token:
            return None
        claims = self.cache.get(token)
        if claims is None:
            claims = await self._introspect(token)
            now = self.clock()
            exp = claims.get("exp")
            until = now + self.max_cache_seconds
            if isinstance(exp, int | float):
                until = min(until, float(exp))
            self.cache.put(token, claims, until=until)
        return self.verifier.principal_from_claims(claims)

    async def _introspect(self, token: str) -> dict[str, Any]:
        try:
            response = await self.http.post(
                self.url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self.auth or httpx.USE_CLIENT_DEFAULT,
                headers={"accept": "application/json"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            logger.warning("token introspection failed: %s", type(exc).__name__)
            raise unavailable(self.name) from None
        if response.status_code != 200:
            logger.warning("token introspection answered HTTP %d", response.status_code)
            raise unavailable(self.name)
        try:
            claims = response.json()
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise unavailable(self.name)
        if claims.get("active") is not True:
            raise unauthorized("The token is not active.")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp <= self.clock():
            raise unauthorized("The token has expired.")
        return claims
