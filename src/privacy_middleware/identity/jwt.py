"""Verified JWT -> Principal. Nothing about a caller is believed until its token verifies.

Keys come from a shared secret (HS*), a public key (RS*/PS*/ES*/EdDSA) or a JWKS URL fetched with
httpx, cached, and refetched when a token names a key id we have not seen (key rotation). Verified
tokens are cached by their SHA-256 so a busy client is not re-verified on every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx
import jwt
from cachetools import TTLCache

from ..errors import ConfigError, PrivacyError
from ..netguard import OutboundGuard
from ..outbound import guarded_client
from ..policy.schema import Identity, Policy
from ..principal import Principal
from ..settings import JwtSettings

SYMMETRIC = {"HS256", "HS384", "HS512"}
# Claims every token must carry (docs/identity.md); all missing ones are named in one answer.
REQUIRED_CLAIMS = ("exp", "iat")
JWKS_MIN_REFRESH_SECONDS = 30.0


def unauthorized(reason: str, **extra: Any) -> PrivacyError:
    return PrivacyError(
        "invalid_token", reason, 401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}, extra=extra
    )


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated base64url parts: anything else is an opaque token for another provider."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2]) and parts[0].startswith("eyJ")


class JWKSCache:
    """The issuer's key set, refreshed on expiry or on an unknown `kid` (at most every 30 s)."""

    def __init__(self, url: str, http: httpx.AsyncClient, ttl: float) -> None:
        self.url = url
        self.http = http
        self.ttl = ttl
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        try:
            response = await self.http.get(self.url, timeout=5.0)
            response.raise_for_status()
            keyset = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            if self._keys:
                return  # keep serving the keys we have; a transient outage must not log everyone out
            raise PrivacyError("identity_unavailable", "The token issuer's keys cannot be fetched.", 503) from exc
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._default = keyset.keys[0] if len(keyset.keys) == 1 else None
        self._fetched_at = time.monotonic()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        now = time.monotonic()
        expired = now - self._fetched_at > self.ttl
        unknown = kid is not None and kid not in self._keys
        may_refetch = now - self._fetched_at > JWKS_MIN_REFRESH_SECONDS
        if expired or (unknown and may_refetch) or not self._keys:
            async with self._lock:
                if time.monotonic() - self._fetched_at > min(self.ttl, JWKS_MIN_REFRESH_SECONDS) or not self._keys:
                    await self._refresh()
        if kid is None:
            if getattr(self, "_default", None) is not None:
                return self._default  # type: ignore[return-value]
            raise unauthorized("The token names no key id.")
        found = self._keys.get(kid)
        if found is None:
            raise unauthorized("The token was signed with an unknown key.")
        return found


class TokenVerifier:
    """Checks signature, algorithm allow-list, issuer, audience, expiry and not-before."""

    def __init__(self, settings: JwtSettings, identity: Identity, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.identity = identity
        self.recipients: dict[str, Any] = {}
        if settings.secret is not None:
            self.algorithms = [a for a in settings.algorithms if a in SYMMETRIC]
            self._static_key: Any = settings.secret.get_secret_value().encode()
        elif settings.public_key:
            self.algorithms = [a for a in settings.algorithms if a not in SYMMETRIC]
            self._static_key = settings.public_key
        else:
            self.algorithms = [a for a in settings.algorithms if a not in SYMMETRIC]
            self._static_key = None
        self._jwks: JWKSCache | None = None
        if settings.jwks_url:
            client = http or guarded_client(OutboundGuard(purpose="JWKS"))  # public addresses only
            self._jwks = JWKSCache(settings.jwks_url, client, settings.jwks_cache_seconds)
        self.enabled = self._static_key is not None or self._jwks is not None
        if self.enabled and not self.algorithms:
            raise ConfigError(
                "PRIVACY_JWT__ALGORITHMS allows no algorithm that fits the configured key "
                "(HS* for a secret, RS*/PS*/ES*/EdDSA for a public key or JWKS)"
            )
        self._cache: TTLCache[str, dict[str, Any]] | None = None
        # who a raw Authorization header value names: no decode, split or hash on a repeat visit
        self._principals: TTLCache[bytes, tuple[Principal, float]] | None = None
        if settings.token_cache_size and settings.token_cache_seconds:
            self._cache = TTLCache(settings.token_cache_size, settings.token_cache_seconds)
            self._principals = TTLCache(settings.token_cache_size, settings.token_cache_seconds)

    def bind_policy(self, policy: Policy) -> None:
        self.identity = policy.identity
        self.recipients = dict(policy.recipients)
        if getattr(self, "_principals", None) is not None:
            self._principals.clear()  # type: ignore[union-attr]

    async def verify(self, token: str) -> dict[str, Any]:
        if not self.enabled:
            raise unauthorized("This service accepts no bearer tokens (no JWT key is configured).")
        digest = hashlib.sha256(token.encode()).hexdigest()
        if self._cache is not None:
            claims = self._cache.get(digest)
            if claims is not None:
                exp = claims.get("exp")
                if exp is None or exp + self.settings.leeway_seconds > time.time():
                    return claims
                self._cache.pop(digest, None)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("The bearer token is malformed.") from None
        if header.get("alg") not in self.algorithms:
            raise unauthorized("The token's algorithm is not accepted.")
        key: Any = self._static_key
        if key is None and self._jwks is not None:
            key = await self._jwks.key(header.get("kid"))
        options: Any = {"require": []}
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise unauthorized("The token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("The token is for another audience.") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("The token is from another issuer.") from None
        except jwt.PyJWTError:
            raise unauthorized("The token's signature or format is invalid.") from None
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        ident = self.identity
        if not any(claims.get(name) for name in ("sub", "client_id", ident.subject_claim)):
            missing.append("sub" if ident.subject_claim == "sub" else f"sub or {ident.subject_claim}")
        if missing:
            quoted = ", ".join(repr(name) for name in missing)
            raise unauthorized(f"The token lacks the claims {quoted}.", missing_claims=missing)
        if self._cache is not None:
            self._cache[digest] = claims
        return claims

    def principal_from_claims(self, claims: dict[str, Any]) -> Principal:
        """Map verified claims to who is asking; unknown recipients or purposes are refused (403)."""
        ident = self.identity
        principal_id = str(claims.get("sub") or claims.get("client_id") or claims.get(ident.subject_claim) or "")
        if not principal_id:
            raise unauthorized("The token names no subject.")
        raw_scopes = claims.get(ident.scope_claim, "")
        scopes = frozenset(raw_scopes.split() if isinstance(raw_scopes, str) else map(str, raw_scopes or []))
        recipient = claims.get(ident.recipient_claim)
        subject: str | None = None
        if recipient is None:
            recipient = next((r for s, r in ident.scope_recipients.items() if s in scopes), None)
        if recipient is None:
            recipient = ident.customer_recipient
            subject = str(claims.get(ident.subject_claim) or principal_id)
        elif recipient not in self.recipients:
            raise PrivacyError("unknown_recipient", "The token names a recipient the policy does not know.", 403)
        purpose = claims.get(ident.purpose_claim)
        if recipient in self.recipients:
            allowed = self.recipients[recipient].purposes
            if purpose is None:
                purpose = allowed[0]
            elif purpose not in allowed:
                raise PrivacyError(
                    "purpose_not_allowed", "The token declares a purpose its recipient may not act for.", 403
                )
        return Principal(
            id=principal_id,
            subject=subject,
            recipient=str(recipient),
            purpose=str(purpose) if purpose is not None else None,
            scopes=scopes,
            claims=claims,
        )

    async def authenticate(self, authorization: bytes | None) -> Principal | None:
        """None when no bearer token is presented; a 401 PrivacyError when one is bad."""
        if not authorization:
            return None
        known = self.known_principal(authorization)
        if known is not None:
            return known
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return None  # another scheme (Basic for the shop's own admin, say) is not ours to judge
        token = token.strip()
        if not token:
            raise unauthorized("The bearer token is empty.")
        claims = await self.verify(token)
        principal = self.principal_from_claims(claims)
        self.remember(authorization, claims, principal)
        return principal

    def known_principal(self, authorization: bytes | None) -> Principal | None:
        """Who a raw Authorization value verified as before, while its token is valid (no decode, no
        hash, no claims mapping on a repeat visit); None when not known or expired."""
        if not authorization or self._principals is None:
            return None
        try:  # `TTLCache.__getitem__` checks the entry's expiry as `get` does, in fewer Python calls
            principal, valid_until = self._principals[authorization]
        except KeyError:
            return None
        if time.time() < valid_until:
            return principal
        self._principals.pop(authorization, None)
        return None

    def remember(self, authorization: bytes, claims: dict[str, Any], principal: Principal) -> None:
        """Keep who a verified Authorization value names, until its token expires (and the cache's TTL)."""
        if self._principals is not None:
            exp = claims.get("exp")
            valid_until = exp + self.settings.leeway_seconds if isinstance(exp, int | float) else float("inf")
            self._principals[authorization] = (principal, valid_until)
