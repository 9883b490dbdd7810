"""Root key providers by name: one table, URL scheme -> `module:from_url` (like uvicorn picks
implementations by name), chosen by the PRIVACY_KEYS URL.

    local:///abs/path/keyring.json                       development keyring file (default)
    vault+https://host:8200/transit/<key>?token_file=... HashiCorp Vault Transit
    awskms://<key-id-or-arn>?region=eu-west-1            AWS KMS

Vault and KMS accept `tombstone_file=/abs/path` for the root-side erasure journal. Adding a provider
is one module with a `from_url(keys_url, http)` and one line in KEY_PROVIDERS.
"""

from __future__ import annotations

import importlib

import httpx

from ...errors import ConfigError
from .awskms import AwsKmsProvider
from .base import RootKeyProvider, WrappedKey
from .local import LocalKeyringProvider
from .vault import VaultTransitProvider

__all__ = [
    "KEY_PROVIDERS",
    "AwsKmsProvider",
    "LocalKeyringProvider",
    "RootKeyProvider",
    "VaultTransitProvider",
    "WrappedKey",
    "needs_http",
    "open_provider",
]

PROVIDERS = "privacy_middleware.crypto.providers"
# URL scheme -> "module:from_url"; `from_url(keys_url, http)` checks the URL and builds the provider.
KEY_PROVIDERS: dict[str, str] = {
    "local": f"{PROVIDERS}.local:from_url",
    "vault+https": f"{PROVIDERS}.vault:from_url",
    "vault+http": f"{PROVIDERS}.vault:from_url",
    "awskms": f"{PROVIDERS}.awskms:from_url",
}
# Providers that call out over HTTP (they share the runtime's client).
HTTP_SCHEMES = ("vault+https", "vault+http", "awskms")


def scheme_of(keys_url: str) -> str:
    return keys_url.split(":", 1)[0] if ":" in keys_url else "(none)"


def needs_http(keys_url: str) -> bool:
    return scheme_of(keys_url) in HTTP_SCHEMES


async def open_provider(keys_url: str, *, http: httpx.AsyncClient | None = None) -> RootKeyProvider:
    """Build the provider a PRIVACY_KEYS URL names; errors say what is wrong without secrets."""
    scheme = scheme_of(keys_url)
    spec = KEY_PROVIDERS.get(scheme)
    if spec is None or (scheme != "local" and not keys_url.startswith(f"{scheme}://")):
        raise ConfigError(f"PRIVACY_KEYS scheme {scheme!r} is not supported: use local://, vault+https:// or awskms://")
    module, _, attribute = spec.partition(":")
    provider: RootKeyProvider = await getattr(importlib.import_module(module), attribute)(keys_url, http)
    return provider
