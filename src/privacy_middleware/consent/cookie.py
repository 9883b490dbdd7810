"""The signed consent cookie: the hot path decides from it without reading the database.

Value: `c1.<b64url(json payload)>.<b64url(HMAC-SHA256(key, "c1." + payload))>`; the payload holds
the holder key, granted and denied purposes, the policy version they were given under, issued-at
and expiry. The key is derived from the server secret with HKDF, so the same secret can serve other
uses without key reuse. A forged, expired or malformed cookie is ignored (no consent) and counted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from prometheus_client import CollectorRegistry, Counter

from ..store.consent_records import Holder

COOKIE_NAME = "pm_consent"
COOKIE_PREFIX = "c1."
DEFAULT_MAX_AGE = 180 * 24 * 3600  # re-ask at least every 6 months (well inside TCF's 13)
MAX_COOKIE_LENGTH = 4096
MIN_SECRET_LENGTH = 32
RejectReason = Literal["malformed", "forged", "expired"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_cookie_key(secret: bytes) -> bytes:
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"the consent cookie secret must be at least {MIN_SECRET_LENGTH} bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"privacy-middleware consent cookie v1")
    return hkdf.derive(secret)


@dataclass(frozen=True, slots=True)
class CookieConsent:
    """What a verified consent cookie says."""

    holder: Holder
    granted: frozenset[str]
    denied: frozenset[str]
    policy_version: str
    issued_at: int
    expires_at: int


class ConsentCookieCodec:
    """Issues and verifies consent cookies. `old_secrets` keep cookies valid across a key rotation."""

    def __init__(
        self,
        secret: bytes,
        *,
        max_age: int = DEFAULT_MAX_AGE,
        old_secrets: Sequence[bytes] = (),
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        cookie_name: str = COOKIE_NAME,
        secure: bool = True,
    ) -> None:
        self._key = derive_cookie_key(secret)
        self._old_keys = [derive_cookie_key(s) for s in old_secrets]
        self.max_age = max_age
        self.clock = clock
        self.cookie_name = cookie_name
        self.secure = secure
        self.rejected = Counter(
            "privacy_consent_cookie_rejected",
            "Consent cookies ignored because they were malformed, forged or expired.",
            ["reason"],
            registry=registry,
        )

    @staticmethod
    def _sign(key: bytes, message: bytes) -> bytes:
        return hmac.digest(key, message, hashlib.sha256)

    def encode(
        self,
        holder: Holder,
        granted: frozenset[str] | set[str],
        denied: frozenset[str] | set[str],
        policy_version: str,
    ) -> str:
        now = int(self.clock())
        payload = orjson.dumps(
            {
                "h": holder.key,
                "g": sorted(granted),
                "d": sorted(denied),
                "v": policy_version,
                "i": now,
                "e": now + self.max_age,
            }
        )
        body = COOKIE_PREFIX + _b64(payload)
        return body + "." + _b64(self._sign(self._key, body.encode("ascii")))

    def _reject(self, reason: RejectReason) -> None:
        self.rejected.labels(reason=reason).inc()

    def decode(self, value: str | None) -> CookieConsent | None:
        """The cookie's content if it is genuine and current; None (and counted) otherwise."""
        if not value:
            return None
        if len(value) > MAX_COOKIE_LENGTH or not value.startswith(COOKIE_PREFIX):
            self._reject("malformed")
            return None
        body, dot, signature = value.rpartition(".")
        if not dot or body.count(".") != 1:
            self._reject("malformed")
            return None
        try:
            given = _unb64(signature)
            message = body.encode("ascii")
        except (binascii.Error, ValueError):
            self._reject("malformed")
            return None
        if not hmac.compare_digest(self._sign(self._key, message), given) and not any(
            hmac.compare_digest(self._sign(key, message), given) for key in self._old_keys
        ):
            self._reject("forged")
            return None
        try:
            data = orjson.loads(_unb64(body[len(COOKIE_PREFIX) :]))
            consent = CookieConsent(
                holder=Holder.from_key(data["h"]),
                granted=frozenset(str(p) for p in data["g"]),
                denied=frozenset(str(p) for p in data["d"]),
                policy_version=str(data["v"]),
                issued_at=int(data["i"]),
                expires_at=int(data["e"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
            # Only reachable with a validly signed but odd payload (e.g. an older format).
            self._reject("malformed")
            return None
        if consent.expires_at <= self.clock():
            self._reject("expired")
            return None
        return consent

    def set_cookie_header(self, value: str) -> str:
        """The `Set-Cookie` value that stores the consent cookie in the browser."""
        secure = "; Secure" if self.secure else ""
        return f"{self.cookie_name}={value}; Max-Age={self.max_age}; Path=/; HttpOnly; SameSite=Lax{secure}"
