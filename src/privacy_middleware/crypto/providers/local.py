"""`local:///abs/path/keyring.json`: root keys in a private file on this host (development).

The keyring holds numbered versions of a 256-bit root key: the primary wraps, every version
unwraps, and `rotate` appends a version. It also keeps the erasure tombstones, because the
keyring is backed up apart from the database: restoring an old database copy does not
restore the keyring's tombstone list, so erased keys stay erased (they are replayed at start).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...errors import ConfigError
from ...keyfiles import check_private, create_private, exclusive, replace_private
from ..encoding import b64url_decode, b64url_encode
from ..errors import DecryptionFailed, KeyServiceUnavailable
from .base import RootKeyProvider, WrappedKey, context_bytes

logger = logging.getLogger("privacy_middleware.crypto")

KEYRING_FORMAT = "privacy-middleware-keyring/1"


def _new_version(number: int) -> dict[str, Any]:
    return {
        "version": number,
        "key": b64url_encode(os.urandom(32)),
        "created_at": datetime.now(UTC).isoformat(),
    }


class Keyring:
    """The parsed keyring file."""

    def __init__(self, document: dict[str, Any], path: str) -> None:
        try:
            if document.get("format") != KEYRING_FORMAT:
                raise ValueError("format")
            self.primary = int(document["primary"])
            self.keys = {int(v["version"]): b64url_decode(v["key"]) for v in document["versions"]}
            self.created = {int(v["version"]): str(v["created_at"]) for v in document["versions"]}
            self.tombstones = frozenset(str(t) for t in document.get("tombstones", []))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"the keyring {path} is not a privacy-middleware keyring") from None
        if self.primary not in self.keys or any(len(k) != 32 for k in self.keys.values()):
            raise ConfigError(f"the keyring {path} is damaged (primary or key length)")

    @staticmethod
    def initial() -> dict[str, Any]:
        return {"format": KEYRING_FORMAT, "primary": 1, "versions": [_new_version(1)], "tombstones": []}


def _read(path: str) -> dict[str, Any]:
    check_private(path, "keyring")
    with open(path, "rb") as handle:
        try:
            document = json.loads(handle.read())
        except ValueError:
            raise ConfigError(f"the keyring {path} is not valid JSON") from None
    if not isinstance(document, dict):
        raise ConfigError(f"the keyring {path} is not a privacy-middleware keyring")
    return document


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"


class LocalKeyringProvider(RootKeyProvider):
    name = "local"

    def __init__(self, path: str) -> None:
        if not os.path.isabs(path):
            raise ConfigError(
                "PRIVACY_KEYS local:// needs an absolute path, e.g. local:///var/lib/privacy/keyring.json"
            )
        self.path = path
        self.description = f"local://{path}"
        self._ring: Keyring | None = None

    @classmethod
    async def open(cls, path: str) -> LocalKeyringProvider:
        provider = cls(path)
        await asyncio.to_thread(provider._load_or_create)
        return provider

    def _load_or_create(self) -> None:
        if not os.path.exists(self.path) and create_private(self.path, _dump(Keyring.initial())):
            logger.warning(
                "created a DEVELOPMENT keyring at %s: root keys sit in a plain file on this host. "
                "Back it up apart from the database, and use vault+https:// or awskms:// in production.",
                self.path,
            )
        self._ring = Keyring(_read(self.path), self.path)

    @property
    def ring(self) -> Keyring:
        if self._ring is None:
            raise RuntimeError("the keyring is not loaded")
        return self._ring

    def _update(self, change: Any) -> None:
        with exclusive(self.path):
            document = _read(self.path)
            Keyring(document, self.path)
            change(document)
            replace_private(self.path, _dump(document))
            self._ring = Keyring(document, self.path)

    async def refresh(self) -> None:
        self._ring = await asyncio.to_thread(lambda: Keyring(_read(self.path), self.path))

    async def wrap(self, key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        version = self.ring.primary
        nonce = os.urandom(12)
        sealed = AESGCM(self.ring.keys[version]).encrypt(nonce, key, context_bytes(context))
        return WrappedKey(str(version), b64url_encode(nonce + sealed))

    async def unwrap(self, wrapped: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        try:
            version = int(wrapped.root_version)
            raw = b64url_decode(wrapped.blob)
        except ValueError:
            raise DecryptionFailed("a stored key is damaged") from None
        if version not in self.ring.keys:
            await self.refresh()
            if version not in self.ring.keys:
                raise KeyServiceUnavailable(f"the keyring has no root key version {version}")
        try:
            return AESGCM(self.ring.keys[version]).decrypt(raw[:12], raw[12:], context_bytes(context))
        except (InvalidTag, ValueError):
            raise DecryptionFailed("a stored key could not be unwrapped") from None

    async def rotate(self) -> str:
        def add(document: dict[str, Any]) -> None:
            number = max(int(v["version"]) for v in document["versions"]) + 1
            document["versions"].append(_new_version(number))
            document["primary"] = number

        await asyncio.to_thread(self._update, add)
        return str(self.ring.primary)

    async def root_versions(self) -> tuple[str, ...]:
        return tuple(str(v) for v in sorted(self.ring.keys))

    async def record_tombstone(self, marker: str) -> bool:
        def add(document: dict[str, Any]) -> None:
            existing = list(document.get("tombstones", []))
            if marker not in existing:
                existing.append(marker)
            document["tombstones"] = existing

        await asyncio.to_thread(self._update, add)
        return True

    async def tombstones(self) -> frozenset[str]:
        await self.refresh()
        return self.ring.tombstones


async def from_url(keys_url: str, http: httpx.AsyncClient | None) -> LocalKeyringProvider:
    """`local:///abs/path/keyring.json`: the `local` row of the key-provider table."""
    parts = urlsplit(keys_url)
    if parts.netloc or not parts.path.startswith("/") or parts.query:
        raise ConfigError("PRIVACY_KEYS local URL must look like local:///absolute/path/keyring.json")
    return await LocalKeyringProvider.open(parts.path)
