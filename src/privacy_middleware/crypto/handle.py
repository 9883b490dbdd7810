"""A KeyService opened on first use, so a key provider that is down fails only the routes that
need a key (503 `key_service_unavailable`) and never stops the middleware from starting."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.exc import DBAPIError

from ..errors import ConfigError, PrivacyError
from ..store import Database
from .erasure_watch import ErasureWatch
from .errors import KeyServiceUnavailable, KeyStoreUnavailable
from .service import KeyService, SubjectSealer
from .shaped import TokenShape

if TYPE_CHECKING:
    from ..store.bus import Bus

# The bus carries the keyed subject hash, never the subject id.
ERASED_TOPIC = "keys.erased"

logger = logging.getLogger("privacy_middleware.crypto")

# The store is unreachable (connection refused or lost): 503 on the routes that need a key.
STORE_DOWN = (OSError, TimeoutError, DBAPIError)


def _store_down(exc: BaseException) -> KeyStoreUnavailable:
    logger.warning("key store unreachable (%s)", type(exc).__name__)
    return KeyStoreUnavailable()


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
        erasure_poll_seconds: float = 0.25,
        erasure_bound_seconds: float = 1.0,
    ) -> None:
        self.keys_url = keys_url
        self.database = database
        self.tenant = tenant
        self.http = http
        self.bus = bus
        self._service: KeyService | None = None
        self._lock = asyncio.Lock()
        self._watching = False
        # The store's erasure epoch, followed so that no erasure is missed (see ErasureWatch).
        self.watch = ErasureWatch(
            database, tenant, self._on_erased, poll_seconds=erasure_poll_seconds, bound_seconds=erasure_bound_seconds
        )
        if bus is not None:
            bus.subscribe(ERASED_TOPIC, self._on_erased)
            bus.on_reconnect(self.watch.on_reconnect)

    async def start(self) -> None:
        """Follow the erasure epoch; from now on cached keys are trusted only while it is fresh."""
        await self.watch.start()
        self._watching = True
        if self._service is not None:
            self._service.cache_fresh = self.watch.fresh

    async def _on_erased(self, subject_hash: str) -> None:
        # An erasure on any instance (ours included): no cached key of that subject survives it.
        if self._service is not None:
            await self._service.evict_erased(subject_hash)

    async def _announce(self, subject_hash: str) -> None:
        """Broadcast after the erasure is durable; a lost broadcast is caught up from the store."""
        if self.bus is None:
            return
        try:
            await self.bus.publish(ERASED_TOPIC, subject_hash)
        except Exception as exc:
            logger.warning("erasure not broadcast (%s); instances catch up from the store", type(exc).__name__)

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
                    if self._watching:
                        self._service.cache_fresh = self.watch.fresh
                except (PrivacyError, ConfigError):
                    raise
                except (OSError, httpx.HTTPError) as exc:
                    logger.error("key service cannot be opened: %s", type(exc).__name__)
                    raise KeyServiceUnavailable() from None
        return self._service

    async def encrypt(self, value: str, *, category: str, subject: str) -> str:
        try:
            return await (await self.get()).encrypt(value, category=category, subject=subject)
        except STORE_DOWN as exc:
            raise _store_down(exc) from None

    async def encrypt_deterministic(self, value: str, *, category: str, subject: str) -> str:
        try:
            return await (await self.get()).encrypt_deterministic(value, category=category, subject=subject)
        except STORE_DOWN as exc:
            raise _store_down(exc) from None

    async def subject_sealer(self, subject: str) -> SubjectSealer:
        try:
            return await (await self.get()).subject_sealer(subject)
        except STORE_DOWN as exc:
            raise _store_down(exc) from None

    def cached_sealer(self, subject: str) -> SubjectSealer | None:
        """The subject's cached key without an await; None when the service is not open yet or the key
        is not cached (then `subject_sealer`)."""
        service = self._service
        return service.cached_sealer(subject) if service is not None else None

    async def decrypt(self, token: str, *, category: str, subject: str) -> str:
        try:
            return await (await self.get()).decrypt(token, category=category, subject=subject)
        except STORE_DOWN as exc:
            raise _store_down(exc) from None

    async def tokenise(self, value: str, *, category: str, subject: str) -> str:
        try:
            return await (await self.get()).tokenise(value, category=category, subject=subject)
        except STORE_DOWN as exc:
            raise _store_down(exc) from None

    async def detokenise(self, token: str, *, category: str, subject: str) -> str:
        try:
            return await (await self.get()).detokenise(token, category=category, subject=subject)
        except STORE_DOWN as exc:
            raise _store_down(exc) from None

    async def tokenise_shaped(
        self, value: str, *, category: str, subject: str, shape: TokenShape, deterministic: bool = False
    ) -> str:
        return await (await self.get()).tokenise_shaped(
            value, category=category, subject=subject, shape=shape, deterministic=deterministic
        )

    async def detokenise_shaped(self, token: str, *, category: str, subject: str) -> str | None:
        return await (await self.get()).detokenise_shaped(token, category=category, subject=subject)

    async def blind_index(self, value: str, *, category: str) -> str:
        try:
            return await (await self.get()).blind_index(value, category=category)
        except STORE_DOWN as exc:
            raise _store_down(exc) from None

    async def close(self) -> None:
        await self.watch.stop()
        if self._service is not None:
            await self._service.close()
            self._service = None
