"""The composition root: builds every service from Settings once, picks implementations by name,
starts and stops them and runs the background maintenance. Nothing below the faces imports it.

Construction does no network or database I/O (so a malformed policy fails at start-up, before
any request); `ensure_started()` connects to the store, migrates it and records the policy version.
The built services are handed on as one typed record (`services.Services`); steps, the privacy API
and the transport take what they use from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .api import build_api
from .asgi.client_ip import ClientIPResolver
from .audit.counters import CounterBackend, MemoryCounters, RedisCounters
from .audit.detectors import LoginGuard, LoginLimits, shared_login_ledger
from .audit.events import detection_finding
from .audit.log import AuditLog
from .audit.retention import RetentionReport
from .audit.retention import purge as purge_audit
from .audit.writer import AuditWriter
from .breach.service import BreachService
from .consent.audit_trail import consent_change_recorder
from .consent.service import ConsentService
from .crypto.handle import KeyServiceHandle
from .errors import StoreUnreachable
from .fields.engine import FieldCipher, FieldEngine, Pseudonymiser
from .guests.service import build_guests
from .identity import TokenVerifier, build_identity
from .identity.guest import GuestProvider
from .keyfiles import load_or_create_ed25519, load_or_create_signing_key
from .logscrub import install as scrub_logs
from .loops import Stopper
from .metrics import Metrics
from .outbound import OutboundRefused, guarded_client
from .pipeline.cookies import cookie_gate
from .pipeline.order import step_factories
from .pipeline.plan import RoutePlan, StepFactory
from .policy.access import Access
from .policy.compile import RouteSpec, RouteTable, compile_policy
from .policy.load import load_policy
from .policy.schema import Policy
from .rights.adapter import ShopAdapter
from .rights.adapters import load_adapter
from .rights.closure import AccountClosure
from .rights.platform_requests import PlatformRequests
from .rights.retention import RetentionRunner
from .rights.service import RightsService, receipt_key_path
from .services import Services
from .settings import Settings
from .store.bus import Bus, LocalBus, RedisBus
from .store.policies import record_policy_version
from .store.record_owners import RecordOwners
from .store.redis_client import redis_from_url

logger = logging.getLogger("privacy_middleware")
# How long a start that could not reach the store is not retried (requests get 503 meanwhile).
STORE_RETRY_SECONDS = 1.0


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        policy: Policy | None = None,
        http: httpx.AsyncClient | None = None,
        cipher: FieldCipher | None = None,
        adapter: ShopAdapter | None = None,
        extra_factories: list[Callable[[Services], list[StepFactory]]] | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or load_policy(settings.policy_file)
        self.started = False
        self._start_lock = asyncio.Lock()
        # After a start that could not reach the store, requests are refused at once until then
        # instead of each one waiting for its own connection attempt.
        self._store_retry_at = 0.0
        self._store_diagnosis = ""
        self._maintenance: asyncio.Task[None] | None = None
        self._maintenance_stop = Stopper()
        self._serving = False
        self._on_start: list[Callable[[], Any]] = []
        self._on_stop: list[Callable[[], Any]] = []
        self.specs: RouteTable[RouteSpec] = compile_policy(self.policy)
        self.metrics = Metrics()
        self.database = settings.open_database()
        self.client_ip = ClientIPResolver(settings.trusted_proxies)
        self._own_http = http is None
        # Every configured destination (JWKS, introspection, who-am-I, key service, sinks, witness,
        # webhooks, shop APIs) is reached through the outbound guard (outbound.py).
        self.http = http or guarded_client(
            settings.outbound.configured_guard(), timeout=httpx.Timeout(10.0), on_refused=self._outbound_refused
        )
        self.verifier = TokenVerifier(settings.jwt, self.policy.identity, http=self.http)
        self.verifier.bind_policy(self.policy)
        self.identity = build_identity(settings, self.policy, self.verifier, self.http)
        key = settings.secret(settings.pseudonym_secret, "pseudonym.key", "pseudonym key")
        self.bus: Bus = RedisBus(settings.redis_url, prefix=settings.redis_prefix) if settings.redis_url else LocalBus()
        self.keys = KeyServiceHandle(
            settings.keys_url,
            database=self.database,
            tenant=self.policy.policy.tenant,
            http=self.http,
            bus=self.bus,
            erasure_poll_seconds=settings.erasure_poll_seconds,
            erasure_bound_seconds=settings.erasure_bound_seconds,
        )
        self.on_start(self.keys.start)
        self.fields = FieldEngine(self.policy, Pseudonymiser(key), cipher or self.keys)
        self.redis = (
            redis_from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)
            if settings.redis_url
            else None
        )
        self.guests = build_guests(self)
        if self.guests is not None:  # guests (sessions, order links) are recognised before anyone else
            self.identity.prepend(GuestProvider(self.guests, self.policy.guests))
        self.consent = ConsentService(
            self.database,
            self.policy,
            cookie_secret=settings.secret(
                settings.consent.cookie_secret, "consent-cookie.key", "consent cookie secret"
            ),
            signing_key=load_or_create_ed25519(
                settings.data_file(settings.consent.signing_key_file, "consent-signing-key.pem"),
                "consent receipt signing key",
            ),
            bus=self.bus,
            cache_ttl=settings.consent.cache_seconds,
            registry=self.metrics.registry,
            secure_cookie=settings.consent.secure_cookie,
        )
        self._build_audit()
        self.closure = AccountClosure()
        self._build_rights(adapter)
        self.record_owners = RecordOwners(self.database, self._record_index) if self._binds_records() else None
        self.access = Access(self.policy, self.rights.flags if self.rights is not None else None, self.record_owners)
        self.breach = BreachService(settings, self.policy, self.database, self.audit, self.http)
        self.services = Services(
            settings=settings,
            policy=self.policy,
            metrics=self.metrics,
            database=self.database,
            http=self.http,
            verifier=self.verifier,
            identity=self.identity,
            bus=self.bus,
            keys=self.keys,
            fields=self.fields,
            consent=self.consent,
            audit_log=self.audit_log,
            audit=self.audit,
            login_guard=self.login_guard,
            access=self.access,
            closure=self.closure,
            rights=self.rights,
            guests=self.guests,
            breach=self.breach,
            record_owners=self.record_owners,
            ensure_started=self.ensure_started,
        )
        self.cookie_gate = cookie_gate(self.services)
        factories: list[StepFactory] = []
        for build in [step_factories, *(extra_factories or [])]:
            factories.extend(build(self.services))
        self.plans: RouteTable[RoutePlan] = self.specs.map(lambda spec: RoutePlan.build(spec, factories))
        self.api = build_api(self.services, self.platform_requests)

    def _binds_records(self) -> bool:
        return any(shape.record_key for shape in self.policy.shapes.values())

    async def _record_index(self, value: str, category: str) -> str:
        return await self.keys.blind_index(value, category=category)

    def _outbound_refused(self, refused: OutboundRefused) -> None:
        """Audit a configured destination the guard refused (the kind of address, never the address)."""
        audit = getattr(self, "audit", None)
        if audit is not None:
            audit.emit(
                detection_finding(
                    "outbound_target_refused",
                    title="outbound call to a non-public address refused",
                    related={"purpose": refused.purpose, "reason": refused.reason},
                )
            )

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
            partition_seconds=audit.partition_days * 86_400,
        )
        self.audit = AuditWriter(
            self.database,
            self.audit_log,
            spool_dir=settings.data_file(audit.spool_dir, "audit-spool"),
            queue_size=audit.queue_size,
            registry=self.metrics.registry,
        )
        counters: CounterBackend = (
            RedisCounters(self.redis, prefix=f"{settings.redis_prefix}login:") if self.redis else MemoryCounters()
        )
        self.login_guard = LoginGuard(
            counters,
            ledger=shared_login_ledger(self.database, counters, self.metrics.registry),
            key=settings.secret(audit.login_guard_key, "login-guard.key", "login guard key"),
            limits=LoginLimits(**self.policy.audit.limits.model_dump()),
            sink=self.audit,
            webhook_url=audit.new_device_webhook,
            http=self.http,
        )
        self.consent.listeners.append(consent_change_recorder(self.audit))

    def _build_rights(self, adapter: ShopAdapter | None) -> None:
        if adapter is None:
            # Unset: the middleware answers for what it holds itself (rights/middleware_only.py).
            adapter = load_adapter(self.settings.shop_adapter or "none", self)
        self.adapter = adapter
        self.rights: RightsService | None = RightsService(
            policy=self.policy,
            database=self.database,
            adapter=adapter,
            fields=self.fields,
            keys=self.keys,
            http=self.http,
            signing_key=load_or_create_signing_key(
                self.settings.receipt_signing_key_file or receipt_key_path(self.settings.data_dir)
            ),
            audit=self.audit,
            bus=self.bus,
        )
        self.retention = RetentionRunner(self.policy, adapter, audit=self.audit)
        self.closure.subscribe(self.rights.on_account_closed)
        self.platform_requests: PlatformRequests | None = PlatformRequests(self.rights, self.audit)

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
            if time.monotonic() < self._store_retry_at:
                raise StoreUnreachable(self._store_diagnosis)
            try:
                await self.database.check()
            except StoreUnreachable as exc:
                self._store_retry_at = time.monotonic() + STORE_RETRY_SECONDS
                self._store_diagnosis = exc.diagnosis
                raise
            if self.settings.auto_migrate:
                await self.database.upgrade()
            await record_policy_version(self.database, self.policy)
            await self.bus.start()
            await self.audit.start()

            for hook in self._on_start:
                await hook()
            scrub_logs()  # again: loggers created by what started since the middleware was built
            self.started = True
            logger.info(
                "privacy-middleware started: %d planned routes, store %s",
                self.plans.size,
                self.database.display_url,
            )

    def is_serving(self) -> bool:
        """Whether `ensure_serving` would find nothing to do (the request path asks this first and
        awaits nothing when it is so)."""
        return (
            self.started
            and self._serving
            and (
                self._maintenance is not None
                or self.rights is None
                or self.settings.audit.retention_interval_seconds <= 0
            )
        )

    async def ensure_serving(self) -> None:
        """Started, plus the server's background maintenance (retention, retrying open erasures).

        Only the middleware calls this: a CLI command that builds a Runtime must not start it.
        """
        await self.ensure_started()
        if not self._serving:
            self._serving = True
            await self.breach.start()
        interval = self.settings.audit.retention_interval_seconds
        if self._maintenance is None and self.rights is not None and interval > 0:
            from .background import maintenance_task

            self._maintenance_stop.reset()
            self._maintenance = maintenance_task(
                self.database,
                self.retention.run,
                self.rights.retry_open,
                interval,
                self._maintenance_stop,
                audit_retention=self.audit_retention,
            )

    async def audit_retention(self, now: datetime | None = None) -> RetentionReport:
        """The policy's audit periods (`[audit] raw_ip_days`, `event_days`) applied to the trail:
        raw values first, event bodies later, each purge explained by a signed marker leaf."""
        report = await purge_audit(
            self.database,
            self.audit_log,
            side_record_days=self.policy.audit.raw_ip_days,
            event_days=self.policy.audit.event_days,
            now=now,
        )
        if report.side_records_erased or report.events_purged:
            logger.info(
                "audit retention: %d raw-value records erased, %d event bodies purged",
                report.side_records_erased,
                report.events_purged,
            )
        return report

    async def stop_shop_work(self) -> None:
        """End the work that calls into the shop (retention and erasure retries through its adapter,
        platform requests in flight) while the shop can still answer: the server's shutdown reaches
        the middleware before the shop, which then closes its database. Idempotent; `stop()` calls it."""
        if self.platform_requests is not None:
            await self.platform_requests.drain()
        await self._maintenance_stop.stop(self._maintenance)
        self._maintenance = None

    async def stop(self) -> None:
        await self.stop_shop_work()
        await self.breach.stop()
        self._serving = False
        await self.audit.stop()
        await self.identity.close()
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
