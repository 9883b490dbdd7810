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

from .api.audit import audit_routes
from .api.consent import consent_routes, gpc_routes
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis import asyncio as aioredis

from .asgi.client_ip import ClientIPResolver
from .audit import events as audit_events
from .audit.counters import CounterBackend, MemoryCounters, RedisCounters
from .audit.detectors import LoginGuard, LoginLimits
from .audit.log import AuditLog
from .audit.writer import AuditWriter
from .consent.records import ConsentRecord
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
        self.started = False
        self._start_lock = asyncio.Lock()
        self._on_start: list[Callable[[], Any]] = []
        self._on_stop: list[Callable[[], Any]] = []
        # Capabilities hook into outbound calls (consent gates) and disclosures (the audit).
        self.outbound_gates: list[Callable[[httpx.Request], Any]] = []
        self.disclosure_hooks: list[Callable[..., Any]] = []
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
        self._build_audit()
        self.api_routes.extend(audit_routes(self))
        if self.policy.tracking.hosts:
            self.outbound_gates.append(OutboundConsentGate(self))

        from .steps import default_factories

        factories: list[StepFactory] = []
        for build in [default_factories, *(extra_factories or [])]:
            factories.extend(build(self))
        self.plans: RouteTable[RoutePlan] = self.specs.map(lambda spec: RoutePlan.build(spec, factories))

        from .api import build_api

        self.api = build_api(self)

    def _build_audit(self) -> None:
        settings, audit = self.settings, self.settings.audit
        side_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"privacy-audit-side-records").derive(
            settings.secret(audit.side_record_key, "audit-side-record.key", "audit side-record key")
        )
        self.audit_log = AuditLog(
            settings.data_file(audit.signing_key_file, "audit-signing-key.pem"),
            side_key,
            checkpoint_every=audit.checkpoint_every,
            checkpoint_interval=audit.checkpoint_seconds,
        )
        self.audit = AuditWriter(
            self.database,
            self.audit_log,
            spool_dir=settings.data_file(audit.spool_dir, "audit-spool"),
            queue_size=audit.queue_size,
            registry=self.metrics.registry,
        )
        self.redis = aioredis.from_url(settings.redis_url) if settings.redis_url else None
        counters: CounterBackend = (
            RedisCounters(self.redis, prefix=f"{settings.redis_prefix}login:") if self.redis else MemoryCounters()
        )
        self.login_guard = LoginGuard(
            counters,
            key=settings.secret(audit.login_guard_key, "login-guard.key", "login guard key"),
            limits=LoginLimits(**self.policy.audit.limits.model_dump()),
            sink=self.audit,
            webhook_url=audit.new_device_webhook,
            http=self.http,
        )
        self.account_closure_hooks: list[Callable[[str], Any]] = []

        async def consent_changed(record: ConsentRecord) -> None:
            if record.holder.kind != "subject":
                return
            granted = [p for p, v in record.purposes.items() if v]
            denied = [p for p, v in record.purposes.items() if not v]
            self.audit.emit(audit_events.consent_change(
                subject=record.holder.id, purposes_granted=granted, purposes_denied=denied,
                source=record.method, policy_version=record.policy_version))

        self.consent.listeners.append(consent_changed)

        async def outbound_disclosure(recipient: str, purpose: str | None, report: Any, route: str) -> None:
            from .fields.engine import Viewer
            from .steps.audit import record_disclosure

            viewer = Viewer(None, recipient, {}, purpose)
            await record_disclosure(self, viewer, report, route=route, purpose=purpose or "", principal="shop",
                                    ip=None, strict_categories=tuple(self.policy.audit.strict_categories))

        self.disclosure_hooks.append(outbound_disclosure)

    async def link_visitor_consent(self, scope: Any, subject: str) -> None:
        """After a sign-in, the visitor's consent choices move to the account."""
        from .consent.service import StoreUnavailable
        from .consent.signals import request_signals

        signals = request_signals(scope.get("headers") or [])
        verified = self.consent.verify_cookie(signals.consent_cookie)
        if verified is None or verified.holder.kind != "visitor":
            return
        try:
            await self.consent.link_visitor(verified.holder.id, subject)
        except (StoreUnavailable, ValueError) as exc:
            logger.warning("visitor consent not linked at sign-in: %s", type(exc).__name__)

    async def account_closed(self, subject: str) -> None:
        for hook in self.account_closure_hooks:
            await hook(subject)

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
            await self.audit.start()
            for hook in self._on_start:
                await hook()
            self.started = True
            logger.info("privacy-middleware started: %d planned routes, store %s",
                        self.plans.size, self.database.display_url)

    async def stop(self) -> None:
        await self.audit.stop()
        await self.keys.close()
        await self.bus.close()
        if self.redis is not None:
            await self.redis.aclose()
        for hook in reversed(self._on_stop):
            try:
                await hook()
            except Exception:
                logger.exception("shutdown hook failed")
        if self._own_http:
            await self.http.aclose()
        await self.database.dispose()
        self.started = False
