"""Identity providers chosen by name in settings (PRIVACY_IDENTITY__PROVIDERS) and tried in order.

The first provider that recognises the caller wins. A bearer token no provider recognises is 401;
a provider that cannot answer stops the chain with 503 (never "anonymous, carry on").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

from ..asgi.headers import first_values
from ..context import Principal
from ..errors import ConfigError
from ..policy.schema import Policy
from ..settings import Settings
from .base import CallerRequest, IdentityProvider
from .cache import KeyedCache
from .jwt import TokenVerifier, looks_like_jwt, unauthorized

BEARER_PROVIDERS = frozenset({"introspection"})


class JwtProvider:
    """Bearer JWTs (the TokenVerifier). Opaque tokens are left to a later bearer provider."""

    name = "jwt"
    bearer_only = True  # recognises a caller by the Authorization header alone

    def __init__(self, verifier: TokenVerifier, *, leave_opaque: bool) -> None:
        self.verifier = verifier
        self.leave_opaque = leave_opaque

    async def resolve(self, request: CallerRequest) -> Principal | None:
        raw = request.authorization()
        if not raw:
            return None  # no bearer token (bearer() is None for an absent or empty header)
        known = self.verifier.known_principal(raw)  # a token verified before and still valid
        if known is not None:
            return known
        token = request.bearer()
        if token is None:
            return None
        if not token:
            raise unauthorized("The bearer token is empty.")
        if self.leave_opaque and (not self.verifier.enabled or not looks_like_jwt(token)):
            return None
        claims = await self.verifier.verify(token)
        principal = self.verifier.principal_from_claims(claims)
        self.verifier.remember(raw, claims, principal)
        return principal


AUTHORIZATION = (b"authorization",)


class IdentityChain:
    def __init__(self, providers: Sequence[IdentityProvider]) -> None:
        self.providers = list(providers)
        self._bearer_only = _bearer_only(self.providers)
        self._first_jwt = _first_jwt(self.providers)

    def prepend(self, provider: IdentityProvider) -> None:
        """Try `provider` before the others (guests: their sessions and order links come first)."""
        self.providers.insert(0, provider)
        self._bearer_only = _bearer_only(self.providers)
        self._first_jwt = _first_jwt(self.providers)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.providers]

    def bind_app(self, app: Any) -> None:
        """Give providers that ask the shop in-process (a path-only who-am-I URL) the wrapped app."""
        for provider in self.providers:
            bind = getattr(provider, "bind_app", None)
            if bind is not None:
                bind(app)

    async def close(self) -> None:
        for provider in self.providers:
            close = getattr(provider, "close", None)
            if close is not None:
                await close()

    async def authenticate(self, scope: Any, route: tuple[str, str] | None = None) -> Principal | None:
        """The caller, None for an anonymous one; 401 for a bad credential, 503 when nobody can tell."""
        first = self._first_jwt
        if self._bearer_only or first is not None:
            raw = first_values(scope.get("headers") or (), AUTHORIZATION)[0]
            if not raw:
                if self._bearer_only:
                    return None  # no Authorization (or an empty one): every provider would answer None, no 401
            elif first is not None:
                known = first.known_principal(raw)  # what the first provider answers first: it wins
                if known is not None:
                    return known
        request = CallerRequest(scope, route)
        for provider in self.providers:
            principal = await provider.resolve(request)
            if principal is not None:
                return principal
        if request.bearer() is not None:
            raise unauthorized("The bearer token is not recognised.")
        return None


def _first_jwt(providers: Sequence[IdentityProvider]) -> TokenVerifier | None:
    """The verifier of the first provider when that is the JWT provider: a repeat caller's token it
    verified before is answered without building the caller's request (`JwtProvider.resolve` answers
    the same, first, from the same first Authorization value)."""
    first = providers[0] if providers else None
    return first.verifier if type(first) is JwtProvider else None


def _bearer_only(providers: Sequence[IdentityProvider]) -> bool:
    """Whether every provider needs an Authorization header to recognise anyone (an anonymous request
    is then answered without asking them: a tracking event, a page view)."""
    return all(getattr(provider, "bearer_only", False) for provider in providers)


def logout_routes(policy: Policy) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in policy.audit.account_routes if r.event == "logout"]


def build_identity(
    settings: Settings, policy: Policy, verifier: TokenVerifier, http: httpx.AsyncClient
) -> IdentityChain:
    """The providers named in PRIVACY_IDENTITY__PROVIDERS, in that order."""
    ident = settings.identity
    names = ident.providers or ["jwt"]
    keys: list[bytes] = []

    def cache_key() -> bytes:  # created only when a provider caches something
        if not keys:
            keys.append(settings.secret(ident.cache_key, "identity-cache.key", "identity cache key"))
        return keys[0]

    logouts = logout_routes(policy)
    builders: dict[str, Callable[[], IdentityProvider]] = {}

    def jwt_provider() -> IdentityProvider:
        later = names[names.index("jwt") + 1 :]
        return JwtProvider(verifier, leave_opaque=any(n in BEARER_PROVIDERS or ":" in n for n in later))

    def introspection() -> IdentityProvider:
        from .introspection import IntrospectionProvider

        if not ident.introspection_url:
            raise ConfigError("the introspection identity provider needs PRIVACY_IDENTITY__INTROSPECTION_URL")
        secret = ident.introspection_client_secret
        return IntrospectionProvider(
            ident.introspection_url,
            verifier=verifier,
            http=http,
            cache=KeyedCache(cache_key(), size=ident.cache_size),
            client_id=ident.introspection_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            max_cache_seconds=ident.introspection_cache_seconds,
        )

    def session() -> IdentityProvider:
        from .session import SessionWhoAmIProvider

        if not ident.session_whoami_url:
            raise ConfigError("the session identity provider needs PRIVACY_IDENTITY__SESSION_WHOAMI_URL")
        return SessionWhoAmIProvider(
            ident.session_whoami_url,
            cookie=ident.session_cookie,
            verifier=verifier,
            http=http,
            cache=KeyedCache(cache_key(), size=ident.cache_size),
            logout_routes=logouts,
            subject_field=ident.session_subject_field,
            scopes_field=ident.session_scopes_field,
            cache_seconds=ident.session_cache_seconds,
            timeout=ident.session_timeout_seconds,
        )

    def django() -> IdentityProvider:
        from .django_session import DjangoSessionProvider

        return DjangoSessionProvider(
            verifier=verifier,
            cache=KeyedCache(cache_key(), size=ident.cache_size),
            logout_routes=logouts,
            settings_module=ident.django_settings_module,
            staff_scope=ident.django_staff_scope,
            group_scopes=ident.django_group_scopes,
            cache_seconds=ident.session_cache_seconds,
        )

    builders.update(jwt=jwt_provider, introspection=introspection, session=session, django=django)
    providers: list[IdentityProvider] = []
    for name in names:
        if name in builders:
            providers.append(builders[name]())
        else:
            from .callable import CallableProvider, load_callable

            if ":" not in name:
                raise ConfigError(
                    f"unknown identity provider {name!r}: use jwt, introspection, session, django or module:function"
                )
            providers.append(CallableProvider(load_callable(name), name))
    if len(set(names)) != len(names):
        raise ConfigError("PRIVACY_IDENTITY__PROVIDERS names a provider twice")
    return IdentityChain(providers)
