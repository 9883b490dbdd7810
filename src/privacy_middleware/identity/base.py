"""The identity provider seam: who is calling, from the request's credentials.

A provider returns a Principal when it recognises the caller, None when the request carries no
credential it handles (the next provider is tried), raises 401 `invalid_token` for a credential it
owns that is bad, and 503 `identity_unavailable` when it cannot answer (its server is down). A
provider that cannot answer never turns the caller into an anonymous visitor. A provider whose class
sets `bearer_only = True` recognises nobody without an Authorization value: a chain of only such
providers answers a request without one as anonymous without asking them (identity/chain.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ..context import Principal
from ..errors import PrivacyError


class IdentityProvider(Protocol):
    name: str

    async def resolve(self, request: CallerRequest) -> Principal | None: ...


def unavailable(provider: str) -> PrivacyError:
    return PrivacyError(
        "identity_unavailable",
        "Who is calling cannot be established right now; try again.",
        503,
        headers={"Retry-After": "5"},
        extra={"provider": provider},
    )


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


@dataclass(slots=True)
class CallerRequest:
    """The parts of a request identity providers read (no body, ever)."""

    scope: dict[str, Any]
    # (method, path template) of the policy route being served, when there is one.
    route: tuple[str, str] | None = None
    _cookies: dict[str, str] | None = None
    # the Authorization value, looked up once per request (every provider and the chain ask for it)
    _authorization: bytes | None = None
    _authorization_read: bool = False

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.scope.get("headers") or [])

    def header(self, name: bytes) -> bytes | None:
        return _header(self.scope.get("headers") or [], name)

    def authorization(self) -> bytes | None:
        """The first Authorization header's value (as `header(b"authorization")`), read once."""
        if not self._authorization_read:
            self._authorization = self.header(b"authorization")
            self._authorization_read = True
        return self._authorization

    def bearer(self) -> str | None:
        """The bearer token, '' for an empty one, None for no Authorization or another scheme."""
        raw = self.authorization()
        if not raw:
            return None
        scheme, _, token = raw.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip()

    def cookie(self, name: str) -> str | None:
        if self._cookies is None:
            jar: dict[str, str] = {}
            for key, value in self.scope.get("headers") or []:
                if key.lower() != b"cookie":
                    continue
                for pair in value.decode("latin-1").split(";"):
                    cookie_name, sep, cookie_value = pair.strip().partition("=")
                    if sep and cookie_name:
                        jar.setdefault(cookie_name, cookie_value.strip().strip('"'))
            self._cookies = jar
        return self._cookies.get(name) or None
