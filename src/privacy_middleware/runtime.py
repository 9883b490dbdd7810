"""Everything the middleware needs, built once from Settings in one place and passed in.

Construction does no network or database I/O (so a malformed policy fails at start-up, before
any request); `ensure_started()` connects to the store, migrates it and records the policy version.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .asgi.client_ip import ClientIPResolver
from .crypto.handle import KeyServiceHandle
from .errors import ConfigError
from .fields.engine import FieldCipher, FieldEngine, Pseudonymiser
from .identity import TokenVerifier
from .metrics import Metrics
from .pipeline import RoutePlan, StepFactory
from .policy.compile import RouteSpec, RouteTable, compile_policy
from .policy.load import load_policy
from .policy.schema import Policy
from .settings import Settings
from .store import Database
from .store.policies import record_policy_version

logger = logging.getLogger("privacy_middleware")


def _secret_file(path: Path) -> bytes:
    """A random secret kept in a 0600 file, created on first use (development default)."""
    if path.exists():
        mode = path.stat().st_mode & 0o077
        if mode:
            raise ConfigError(f"{path} is readable by other users; run: chmod 600 {path}")
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret.hex())
    logger.warning("created %s: a development secret; set PRIVACY_PSEUDONYM_SECRET in production", path)
    return secret


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        policy: Policy | None = None,
        http: httpx.AsyncClient | None = None,
        cipher: FieldCipher | None = None,
        extra_factories: list[Callable[[Runtime], list[StepFactory]]] | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or load_policy(settings.policy_file)
        self.specs: RouteTable[RouteSpec] = compile_policy(self.policy)
        self.metrics = Metrics()
        self.database = Database(settings.database_url)
        self.client_ip = ClientIPResolver(settings.trusted_proxies)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False)
        self.verifier = TokenVerifier(settings.jwt, self.policy.identity, http=self.http)
        self.verifier.bind_policy(self.policy)
        secret = settings.pseudonym_secret
        key = secret.get_secret_value().encode() if secret else _secret_file(settings.data_dir / "pseudonym.key")
        self.keys = KeyServiceHandle(
            settings.keys_url, database=self.database, tenant=self.policy.policy.tenant, http=self.http
        )
        self.fields = FieldEngine(self.policy, Pseudonymiser(key), cipher or self.keys)
        self.started = False
        self._start_lock = asyncio.Lock()
        self._on_start: list[Callable[[], Any]] = []
        self._on_stop: list[Callable[[], Any]] = []
        # Capabilities hook into outbound calls (consent gates) and disclosures (the audit).
        self.outbound_gates: list[Callable[[httpx.Request], Any]] = []
        self.disclosure_hooks: list[Callable[..., Any]] = []

        from .steps import default_factories

        factories: list[StepFactory] = []
        for build in [default_factories, *(extra_factories or [])]:
            factories.extend(build(self))
        self.plans: RouteTable[RoutePlan] = self.specs.map(lambda spec: RoutePlan.build(spec, factories))

        from .api import build_api

        self.api = build_api(self)

    def on_start(self, hook: Callable[[], Any]) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Callable[[], Any]) -> None:
        self._on_stop.append(hook)

    async def ensure_started(self) -> None:
        if self.started:
            return
        async with self._start_lock:
            if self.started:
                return
            await self.database.check()
            if self.settings.auto_migrate:
                await self.database.upgrade()
            await record_policy_version(self.database, self.policy)
            for hook in self._on_start:
                await hook()
            self.started = True
            logger.info("privacy-middleware started: %d planned routes, store %s",
                        self.plans.size, self.database.display_url)

    async def stop(self) -> None:
        await self.keys.close()
        for hook in reversed(self._on_stop):
            try:
                await hook()
            except Exception:
                logger.exception("shutdown hook failed")
        if self._own_http:
            await self.http.aclose()
        await self.database.dispose()
        self.started = False
