"""A KeyService opened on first use, so a key provider that is down fails only the routes that
need a key (503 `key_service_unavailable`) and never stops the middleware from starting."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import httpx

from ..errors import ConfigError, PrivacyError
from ..store import Database
from .errors import KeyServiceUnavailable
from .service import KeyService, SubjectSealer
from .shaped import TokenShape

if TYPE_CHECKING:
    from ..store.bus import Bus

# The bus carries the keyed subject hash, never the subject id.
ERASED_TOPIC = "keys.erased"

logger = logging.getLogger("privacy_middleware.crypto")


class KeyServiceHandle:
    """Implements the field engine's cipher protocol by delegating to a lazily opened KeyService."""

    def __init__(
        self,
        keys_url: str,
        *,
        database: Database,
        tenant: str,
        http: httpx.AsyncClient | None,
        bus: Bus | None = None,
    ) -> None:
        self.keys_url = keys_url
        self.database = database
        self.tenant = tenant
        self.http = http
        self.bus = bus
        self._service: KeyService | None = None
        self._lock = asyncio.Lock()
        if bus is not None:
            bus.subscribe(ERASED_TOPIC, self._on_erased)

    async def _on_erased(self, subject_hash: str) -> None:
        # An erasure on any instance (ours included): no cached key of that subject survives it.
        if self._service is not None:
            await self._service.evict_erased(subject_hash)

    async def _announce(self, subject_hash: str) -> None:
        if self.bus is not None:
            await self.bus.publish(ERASED_TOPIC, subject_hash)

    async def get(self) -> KeyService:
        if self._service is not None:
            return self._service
        async with self._lock:
            if self._service is None:
                try:
                    self._service = await KeyService.open(
                        self.keys_url, database=self.database, tenant=self.tenant, http=self.http
                    )
                    self._service.erasure_listeners.append(self._announce)
                except (PrivacyError, ConfigError):
                    raise
                except (OSError, httpx.HTTPError) as exc:
                    logger.error("key service cannot be opened: %s", type(exc).__name__)
                    raise KeyServiceUnavailable() from None
        return self._service

    async def encrypt(self, value: str, *, category: str, subject: str) -> str:
        return await (await self.get()).encrypt(value, category=category, subject=subject)

    async def encrypt_deterministic(self, value: str, *, category: str, subject: str) -> str:
        return await (await self.get()).encrypt_deterministic(value, category=category, subject=subject)

    async def subject_sealer(self, subject: str) -> SubjectSealer:
        return await (await self.get()).subject_sealer(subject)

    async def decrypt(self, token: str, *, category: str, subject: str) -> str:
        return await (await self.get()).decrypt(token, category=category, subject=subject)

    async def tokenise(self, value: str, *, category: str, subject: str) -> str:
        return await (await self.get()).tokenise(value, category=category, subject=subject)

    async def detokenise(self, token: str, *, category: str, subject: str) -> str:
        return await (await self.get()).detokenise(token, category=category, subject=subject)

    async def tokenise_shaped(
        self, value: str, *, category: str, subject: str, shape: TokenShape, deterministic: bool = False
    ) -> str:
        return await (await self.get()).tokenise_shaped(
            value, category=category, subject=subject, shape=shape, deterministic=deterministic
        )

    async def detokenise_shaped(self, token: str, *, category: str, subject: str) -> str | None:
        return await (await self.get()).detokenise_shaped(token, category=category, subject=subject)

    async def blind_index(self, value: str, *, category: str) -> str:
        return await (await self.get()).blind_index(value, category=category)

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
            self._service = None
