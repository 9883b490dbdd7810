"""Everything the middleware needs, built once from Settings in one place and passed in.

Construction does no network or database I/O (so a malformed policy fails at start-up, before
any request); `ensure_started()` connects to the store, migrates it and records the policy version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

from starlette.routing import BaseRoute

from .api.consent import consent_routes, gpc_routes
from .asgi.client_ip import ClientIPResolver
from .consent.service import ConsentService
from .keyfiles import load_or_create_ed25519
from .steps.consent import CookieGate, OutboundConsentGate
from .store.bus import Bus, LocalBus, RedisBus
from .crypto.handle import KeyServiceHandle
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
        key = settings.secret(settings.pseudonym_secret, "pseudonym.key", "pseudonym key")
        self.keys = KeyServiceHandle(
            settings.keys_url, database=self.database, tenant=self.policy.policy.tenant, http=self.http
        )
        self.fields = FieldEngine(self.policy, Pseudonymiser(key), cipher or self.keys)
        self.bus: Bus = RedisBus(settings.redis_url, prefix=settings.redis_prefix) if settings.redis_url else LocalBus()
        self.consent = ConsentService(
            self.database,
            self.policy,
            cookie_secret=settings.secret(settings.consent.cookie_secret, "consent-cookie.key", "consent cookie secret"),
            signing_key=load_or_create_ed25519(
                settings.data_file(settings.consent.signing_key_file, "consent-signing-key.pem"),
                "consent receipt signing key",
            ),
            bus=self.bus,
            cache_ttl=settings.consent.cache_seconds,
            registry=self.metrics.registry,
            secure_cookie=settings.consent.secure_cookie,
        )
        self.api_routes: list[BaseRoute] = consent_routes(
            self.consent,
            allowed_origins=settings.consent.allowed_origins,
            cookie_domains=settings.consent.cookie_domains,
        )
        self.root_routes: list[BaseRoute] = gpc_routes(self.policy.policy.effective_date)
        self.cookie_gate = CookieGate(self) if self.policy.tracking.cookies else None
        self.started = False
        self._start_lock = asyncio.Lock()
        self._on_start: list[Callable[[], Any]] = []
        self._on_stop: list[Callable[[], Any]] = []
        # Capabilities hook into outbound calls (consent gates) and disclosures (the audit).
        self.outbound_gates: list[Callable[[httpx.Request], Any]] = []
        self.disclosure_hooks: list[Callable[..., Any]] = []
        if self.policy.tracking.hosts:
            self.outbound_gates.append(OutboundConsentGate(self))

        from .steps import default_factories

        factories: list[StepFactory] = []
        for build in [default_factories, *(extra_factories or [])]:
            factories.extend(build(self))
        self.plans: RouteTable[RoutePlan] = self.specs.map(lambda spec: RoutePlan.build(spec, factories))

        from .api import build_api

        self.api = build_api(self)

    async def subject_flags(self, subject: str) -> tuple[frozenset[str], bool]:
        """(objected purposes, restricted) for a subject; set through the subject-rights API."""
        return frozenset(), False

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
            await self.bus.start()
            for hook in self._on_start:
                await hook()
            self.started = True
            logger.info("privacy-middleware started: %d planned routes, store %s",
                        self.plans.size, self.database.display_url)

    async def stop(self) -> None:
        await self.keys.close()
        await self.bus.close()
        for hook in reversed(self._on_stop):
            try:
                await hook()
            except Exception:
                logger.exception("shutdown hook failed")
        if self._own_http:
            await self.http.aclose()
        await self.database.dispose()
        self.started = False
