"""Root key providers, picked by the PRIVACY_KEYS URL (like uvicorn picks implementations by name).

    local:///abs/path/keyring.json                       development keyring file (default)
    vault+https://host:8200/transit/<key>?token_file=... HashiCorp Vault Transit
    awskms://<key-id-or-arn>?region=eu-west-1            AWS KMS

Vault and KMS accept `tombstone_file=/abs/path` for the root-side erasure journal.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import parse_qsl, urlsplit

import httpx

from ...errors import ConfigError
from .awskms import AwsKmsProvider
from .base import RootKeyProvider, WrappedKey
from .local import LocalKeyringProvider
from .vault import VaultTransitProvider

__all__ = [
    "AwsKmsProvider",
    "LocalKeyringProvider",
    "RootKeyProvider",
    "VaultTransitProvider",
    "WrappedKey",
    "needs_http",
    "open_provider",
]


def needs_http(keys_url: str) -> bool:
    return keys_url.startswith(("vault+", "awskms:"))


def _options(query: str, allowed: set[str], scheme: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"PRIVACY_KEYS {scheme} URL has unknown option(s): {', '.join(unknown)}")
    for name in ("token_file", "tombstone_file"):
        if name in options and not os.path.isabs(options[name]):
            raise ConfigError(f"PRIVACY_KEYS {name} must be an absolute path")
    return options


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def open_provider(keys_url: str, *, http: httpx.AsyncClient | None = None) -> RootKeyProvider:
    """Build the provider a PRIVACY_KEYS URL names; errors say what is wrong without secrets."""
    if keys_url.startswith("local:"):
        parts = urlsplit(keys_url)
        if parts.netloc or not parts.path.startswith("/") or parts.query:
            raise ConfigError("PRIVACY_KEYS local URL must look like local:///absolute/path/keyring.json")
        return await LocalKeyringProvider.open(parts.path)
    if keys_url.startswith(("vault+https://", "vault+http://")):
        parts = urlsplit(keys_url)
        scheme = parts.scheme.removeprefix("vault+")
        if not parts.hostname:
            raise ConfigError("PRIVACY_KEYS vault URL needs a host")
        if scheme == "http" and not _is_loopback(parts.hostname):
            raise ConfigError("PRIVACY_KEYS vault+http:// is only allowed for a loopback Vault; use vault+https://")
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 2:
            raise ConfigError("PRIVACY_KEYS vault URL needs /<transit mount>/<key name>")
        options = _options(parts.query, {"token_file", "tombstone_file"}, "vault")
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
    if keys_url.startswith("awskms://"):
        rest = keys_url.removeprefix("awskms://")
        key_id, _, query = rest.partition("?")
        options = _options(query, {"region", "endpoint", "tombstone_file"}, "awskms")
        region = options.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region and key_id.startswith("arn:"):
            fields = key_id.split(":")
            region = fields[3] if len(fields) > 3 else ""
        if not key_id or not region:
            raise ConfigError("PRIVACY_KEYS awskms URL must look like awskms://<key-id-or-arn>?region=eu-west-1")
        endpoint = options.get("endpoint")
        if endpoint is not None and not (
            endpoint.startswith("https://") or _is_loopback(urlsplit(endpoint).hostname or "")
        ):
            raise ConfigError("PRIVACY_KEYS awskms endpoint must use https://")
        if not os.environ.get("AWS_ACCESS_KEY_ID") or not os.environ.get("AWS_SECRET_ACCESS_KEY"):
            raise ConfigError(
                "PRIVACY_KEYS awskms needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
            )
        if http is None:
            raise ConfigError("the awskms provider needs an HTTP client")
        return AwsKmsProvider(
            key_id=key_id,
            region=region,
            http=http,
            endpoint=endpoint,
            tombstone_file=options.get("tombstone_file"),
        )
    scheme = keys_url.split(":", 1)[0] if ":" in keys_url else "(none)"
    raise ConfigError(f"PRIVACY_KEYS scheme {scheme!r} is not supported: use local://, vault+https:// or awskms://")
