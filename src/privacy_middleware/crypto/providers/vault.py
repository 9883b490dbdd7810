"""`vault+https://host:port/<mount>/<key>?token_file=...`: HashiCorp Vault Transit as the root.

Calls `POST /v1/<mount>/encrypt|decrypt|rewrap/<key>` and `POST /v1/<mount>/keys/<key>/rotate`
with the `X-Vault-Token` header; plaintext travels base64-encoded, ciphertext is `vault:vN:...`.
Transit's rewrap takes no associated data, so the wrapping context is bound inside the
plaintext instead (key || SHA-256(context)[:16], checked in constant time on unwrap); rewrap
keeps it intact without Vault ever returning the key.
The token is read from `token_file` on every call (Vault Agent renews it there) or from
VAULT_TOKEN; it never appears in a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from ...errors import ConfigError
from ..errors import DecryptionFailed, KeyServiceUnavailable
from .base import RootKeyProvider, WrappedKey, context_bytes
from .http import json_body, raise_for_status, send
from .journal import TombstoneJournal
from .url import is_loopback, url_options

_CIPHERTEXT = re.compile(r"vault:v([0-9]+):[A-Za-z0-9+/=]+")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
BINDING_BYTES = 16


def _binding(context: Mapping[str, str]) -> bytes:
    return hashlib.sha256(context_bytes(context)).digest()[:BINDING_BYTES]


class VaultTransitProvider(RootKeyProvider):
    name = "vault"

    def __init__(
        self,
        *,
        base_url: str,
        mount: str,
        key: str,
        http: httpx.AsyncClient,
        token_file: str | None = None,
        tombstone_file: str | None = None,
    ) -> None:
        if not _NAME.fullmatch(key) or not all(_NAME.fullmatch(part) for part in mount.split("/")):
            raise ConfigError("PRIVACY_KEYS vault URL needs /<transit mount>/<key name>")
        if token_file is None and not os.environ.get("VAULT_TOKEN"):
            raise ConfigError("PRIVACY_KEYS vault URL needs ?token_file=/path or the VAULT_TOKEN variable")
        self.base_url = base_url.rstrip("/")
        self.mount = mount
        self.key = key
        self.http = http
        self.token_file = token_file
        self.journal = TombstoneJournal(tombstone_file) if tombstone_file else None
        self.description = f"vault {self.base_url}/v1/{mount} key {key}"

    def _token(self) -> str:
        if self.token_file is None:
            token = os.environ.get("VAULT_TOKEN", "")
        else:
            try:
                with open(self.token_file, encoding="utf-8") as handle:
                    token = handle.read().strip()
            except OSError:
                raise KeyServiceUnavailable("the Vault token file cannot be read") from None
        if not token:
            raise KeyServiceUnavailable("no Vault token is available")
        return token

    async def _post(self, path: str, payload: dict[str, str] | None, *, unwrapping: bool = False) -> httpx.Response:
        request = self.http.build_request(
            "POST",
            f"{self.base_url}/v1/{self.mount}/{path}",
            json=payload,
            headers={"X-Vault-Token": self._token()},
        )
        response = await send(self.http, request)
        raise_for_status(response, unwrapping=unwrapping)
        return response

    @staticmethod
    def _ciphertext(response: httpx.Response) -> WrappedKey:
        data = json_body(response).get("data")
        text = data.get("ciphertext") if isinstance(data, dict) else None
        match = _CIPHERTEXT.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise KeyServiceUnavailable("Vault sent an unexpected answer")
        return WrappedKey(match.group(1), match.group(0))

    async def wrap(self, key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        plaintext = base64.b64encode(key + _binding(context)).decode("ascii")
        return self._ciphertext(await self._post(f"encrypt/{self.key}", {"plaintext": plaintext}))

    async def unwrap(self, wrapped: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        if not _CIPHERTEXT.fullmatch(wrapped.blob):
            raise DecryptionFailed("a stored key is damaged")
        response = await self._post(f"decrypt/{self.key}", {"ciphertext": wrapped.blob}, unwrapping=True)
        data = json_body(response).get("data")
        encoded = data.get("plaintext") if isinstance(data, dict) else None
        try:
            raw = base64.b64decode(encoded if isinstance(encoded, str) else "", validate=True)
        except (binascii.Error, ValueError):
            raise KeyServiceUnavailable("Vault sent an unexpected answer") from None
        key, binding = raw[:-BINDING_BYTES], raw[-BINDING_BYTES:]
        if len(key) != 32 or not hmac.compare_digest(binding, _binding(context)):
            raise DecryptionFailed("a stored key does not belong where it was found")
        return key

    async def rewrap(self, wrapped: WrappedKey, *, context: Mapping[str, str]) -> WrappedKey:
        response = await self._post(f"rewrap/{self.key}", {"ciphertext": wrapped.blob}, unwrapping=True)
        return self._ciphertext(response)

    async def rotate(self) -> str | None:
        response = await self._post(f"keys/{self.key}/rotate", None)
        if response.status_code == 204 or not response.content:
            return None
        data = json_body(response).get("data")
        latest = data.get("latest_version") if isinstance(data, dict) else None
        return str(latest) if isinstance(latest, int) else None

    async def record_tombstone(self, marker: str) -> bool:
        if self.journal is None:
            return False
        await self.journal.record(marker)
        return True

    async def tombstones(self) -> frozenset[str]:
        return await self.journal.load() if self.journal else frozenset()


async def from_url(keys_url: str, http: httpx.AsyncClient | None) -> VaultTransitProvider:
    """`vault+https://host:8200/transit/<key>?token_file=...`: the `vault+https` row of the table."""
    parts = urlsplit(keys_url)
    scheme = parts.scheme.removeprefix("vault+")
    if not parts.hostname:
        raise ConfigError("PRIVACY_KEYS vault URL needs a host")
    if scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError("PRIVACY_KEYS vault+http:// is only allowed for a loopback Vault; use vault+https://")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2:
        raise ConfigError("PRIVACY_KEYS vault URL needs /<transit mount>/<key name>")
    options = url_options(parts.query, {"token_file", "tombstone_file"}, "vault")
    if http is None:
        raise ConfigError("the vault provider needs an HTTP client")
    return VaultTransitProvider(
        base_url=f"{scheme}://{parts.netloc}",
        mount="/".join(segments[:-1]),
        key=segments[-1],
        http=http,
        token_file=options.get("token_file"),
        tombstone_file=options.get("tombstone_file"),
    )
