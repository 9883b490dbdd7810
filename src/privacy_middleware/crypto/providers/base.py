"""The seam between the key hierarchy and whatever holds the root key (keyring, Vault, KMS).

A provider wraps and unwraps 32-byte tenant keys; it never sees subject keys or field values,
so a remote provider is called once per tenant key and cache lifetime, not per request.
`context` names what a wrapped key is for (tenant, purpose, generation) and is bound to it,
so a wrapped key copied into another row does not unwrap.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from ..encoding import length_prefixed


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A key as the store keeps it: the root version that wrapped it and the opaque blob."""

    root_version: str
    blob: str


def context_bytes(context: Mapping[str, str]) -> bytes:
    """Canonical bytes of a wrapping context (sorted, length-prefixed)."""
    parts: list[str] = []
    for name in sorted(context):
        parts += [name, context[name]]
    return length_prefixed("privacy-middleware key wrap", *parts)


class RootKeyProvider(ABC):
    """Root of the key hierarchy; chosen by the PRIVACY_KEYS URL."""

    #: short name shown in status output ("local", "vault", "awskms")
    name: str = ""
    #: where the root key lives, safe to log (no token, no credentials)
    description: str = ""

    async def generate(self, *, context: Mapping[str, str]) -> tuple[bytes, WrappedKey]:
        """A fresh random 256-bit key and its wrapped form."""
        key = os.urandom(32)
        return key, await self.wrap(key, context=context)

    @abstractmethod
    async def wrap(self, key: bytes, *, context: Mapping[str, str]) -> WrappedKey: ...

    @abstractmethod
    async def unwrap(self, wrapped: WrappedKey, *, context: Mapping[str, str]) -> bytes: ...

    async def rewrap(self, wrapped: WrappedKey, *, context: Mapping[str, str]) -> WrappedKey:
        """The same key wrapped under the primary root version."""
        return await self.wrap(await self.unwrap(wrapped, context=context), context=context)

    @abstractmethod
    async def rotate(self) -> str | None:
        """Make a new root version primary (old ones stay decrypt-only); its label when known."""

    async def root_versions(self) -> tuple[str, ...]:
        """Root versions the provider can tell about (empty when it cannot list them)."""
        return ()

    async def refresh(self) -> None:
        """Re-read provider state another process may have changed (e.g. a rotated keyring)."""
        return None

    async def record_tombstone(self, marker: str) -> bool:
        """Keep an erasure marker on the root side, outside the database; False if unsupported."""
        return False

    async def tombstones(self) -> frozenset[str]:
        """Erasure markers kept on the root side, replayed into the store at start-up."""
        return frozenset()

    async def aclose(self) -> None:
        """Release what the provider owns (the HTTP client belongs to the caller)."""
        return None
