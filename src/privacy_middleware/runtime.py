"""Everything the middleware needs, built once from Settings in one place and passed in.

Construction does no network or database I/O (so a malformed policy fails at start-up, before
any request); `ensure_started()` connects to the store, migrates it and records the policy version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis import asyncio as aioredis
from starlette.routing import BaseRoute

from .api.audit import audit_routes
from .api.consent import consent_routes, gpc_routes
from .asgi.client_ip import ClientIPResolver
from .audit import events as audit_events
from .audit.counters import CounterBackend, MemoryCounters, RedisCounters
from .audit.detectors import LoginGuard, LoginLimits
from .audit.log import AuditLog
from .audit.writer import AuditWriter
from .consent.records import ConsentRecord
from .consent.service import ConsentService
from .crypto.handle import KeyServiceHandle
from .fields.engine import FieldCipher, FieldEngine, Pseudonymiser
from .identity import TokenVerifier
from .keyfiles import load_or_create_ed25519
from .metrics import Metrics
from .pipeline.cookies import CookieGate
from .pipeline.order import step_factories
from .pipeline.outbound_consent import OutboundConsentGate
from .pipeline.plan import RoutePlan, StepFactory
from .policy.compile import RouteSpec, RouteTable, compile_policy
from .policy.load import load_policy
from .policy.schema import Policy
from .rights.adapter import ShopAdapter
from .settings import Settings
from .store import Database
from .store.bus import Bus, LocalBus, RedisBus
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
        adapter: ShopAdapter | None = None,
        extra_factories: list[Callable[[Runtime], list[StepFactory]]] | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or load_policy(settings.policy_file)
        self.started = False
        self._start_lock = asyncio.Lock()
        self._maintenance: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
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
        self.bus: Bus = RedisBus(settings.redis_url, prefix=settings.redis_prefix) if settings.redis_url else LocalBus()
        self.keys = KeyServiceHandle(
            settings.keys_url, database=self.database, tenant=self.policy.policy.tenant, http=self.http, bus=self.bus
        )
        self.fields = FieldEngine(self.policy, Pseudonymiser(key), cipher or self.keys)
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
        self.api_routes: list[BaseRoute] = [
            *consent_routes(
                self.consent,
                allowed_origins=settings.consent.allowed_origins,
                cookie_domains=settings.consent.cookie_domains,
            )
        ]
        self.root_routes: list[BaseRoute] = [*gpc_routes(self.policy.policy.effective_date)]
        tracking = self.policy.tracking
        self.cookie_gate = CookieGate(self) if tracking.cookies or tracking.undeclared_cookies == "drop" else None
        self._build_audit()
        self.api_routes.extend(audit_routes(self))
        self._build_rights(adapter)
        if self.policy.tracking.hosts:
            self.outbound_gates.append(OutboundConsentGate(self))

        factories: list[StepFactory] = []
        for build in [step_factories, *(extra_factories or [])]:
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
            self.audit.emit(
                audit_events.consent_change(
                    subject=record.holder.id,
                    purposes_granted=granted,
                    purposes_denied=denied,
                    source=record.method,
                    policy_version=record.policy_version,
                )
            )

        self.consent.listeners.append(consent_changed)

        async def outbound_disclosure(recipient: str, purpose: str | None, report: Any, route: str) -> None:
            from .fields.engine import Viewer
            from .pipeline.disclosure_audit import record_disclosure

            viewer = Viewer(None, recipient, {}, purpose)
            await record_disclosure(
                self,
                viewer,
                report,
                route=route,
                purpose=purpose or "",
                principal="shop",
                ip=None,
                strict_categories=tuple(self.policy.audit.strict_categories),
            )

        self.disclosure_hooks.append(outbound_disclosure)

    def _build_rights(self, adapter: ShopAdapter | None) -> None:
        from .api.rights import rights_routes
        from .rights.cli import load_adapter
        from .rights.retention import RetentionRunner
        from .rights.service import RightsService

        if adapter is None:
            # Unset: the middleware answers for what it holds itself (rights/middleware_only.py).
            adapter = load_adapter(self.settings.shop_adapter or "none", self)
        self.adapter = adapter
        self.rights: RightsService | None = RightsService.for_runtime(self, adapter, audit=self.audit, bus=self.bus)
        self.retention = RetentionRunner(self.policy, adapter, audit=self.audit)
        self.api_routes.extend(rights_routes(self.rights))
        self.account_closure_hooks.append(self.rights.on_account_closed)
        self.api_routes.extend(self._webhook_routes())

    def _webhook_routes(self) -> list[BaseRoute]:
        """Platform privacy webhooks feed the subject-request queue (configured ones only)."""
        from .api.webhooks import webhook_routes
        from .integrations.common import WebhookReceiver

        hooks = self.settings.webhooks
        receivers: list[WebhookReceiver] = []
        if hooks.shopify_secrets:
            from .integrations.shopify.webhooks import ShopifyWebhooks

            receivers.append(ShopifyWebhooks(hooks.shopify_secrets, shops=hooks.shopify_shops))
        if hooks.woocommerce_secrets:
            from .integrations.woocommerce.webhooks import WooCommerceWebhooks

            receivers.append(WooCommerceWebhooks(hooks.woocommerce_secrets))
        if hooks.saleor_api_url:
            from .integrations.saleor.webhooks import SaleorWebhooks

            receivers.append(SaleorWebhooks(api_url=hooks.saleor_api_url, http=self.http, secret=hooks.saleor_secret))
        if not receivers:
            return []
        return list(
            webhook_routes(self.database, self.submit_platform_request, receivers, on_rejected=self.webhook_rejected)
        )

    async def submit_platform_request(self, kind: str, subject: str, source: str, idempotency_key: str) -> None:
        """A verified platform request: recorded durably at once, carried out in the background.

        The platform gets its 2xx within its deadline; an erasure that fails midway stays open and is
        retried by the server's maintenance. A whole-shop erasure has no per-subject meaning here: it
        is recorded in the audit trail for the operator, who runs `dsar erase` per subject.
        """
        assert self.rights is not None
        principal = f"platform:{source}"[:200]
        if kind == "shop_erasure":
            self.audit.emit(
                audit_events.detection_finding(
                    "shop_erasure_requested",
                    title="The platform asked to erase all data of a shop",
                    severity_id=audit_events.SEVERITY_MEDIUM,
                    related={"source": source},
                )
            )
            return
        rights = self.rights
        if kind == "erasure":
            await rights.submit(
                "erasure", subject, principal=principal, reason="platform request", idempotency_key=idempotency_key
            )

            async def work() -> None:
                await rights.erase(
                    subject, principal=principal, reason="platform request", idempotency_key=idempotency_key
                )
        else:

            async def work() -> None:
                await rights.export(
                    subject, principal=principal, reason="platform data request", idempotency_key=idempotency_key
                )

        task = asyncio.create_task(work(), name="privacy-platform-request")
        self._background.add(task)
        task.add_done_callback(self._finished_background)

    def _finished_background(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("platform request failed (%s); it stays open for retry", type(task.exception()).__name__)

    async def webhook_rejected(self, platform: str, reason: str, client_ip: str | None) -> None:
        self.audit.emit(
            audit_events.detection_finding(
                "webhook_rejected",
                title="A platform webhook failed verification",
                severity_id=audit_events.SEVERITY_MEDIUM,
                related={"platform": platform, "reason": reason},
                ip=client_ip,
            )
        )

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
        if self.rights is None:
            return frozenset(), False
        flags = await self.rights.flags.get(subject)
        return frozenset(flags.objections), flags.restricted

    async def blocked_for(self, subject: str, recipient: str | None, purpose: str | None) -> bool:
        """Whether a subject's restriction or objection keeps their data from this recipient."""
        if self.rights is None:
            return False
        flags = await self.rights.flags.get(subject)
        if purpose is not None and flags.objects_to(purpose):
            return True
        if not flags.restricted:
            return False
        declared = self.policy.recipients.get(recipient or "")
        purposes = declared.purposes if declared else ([purpose] if purpose else [])
        return not purposes or not all(
            self.policy.purposes[p].allowed_under_restriction for p in purposes if p in self.policy.purposes
        )

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
            logger.info(
                "privacy-middleware started: %d planned routes, store %s",
                self.plans.size,
                self.database.display_url,
            )

    async def ensure_serving(self) -> None:
        """Started, plus the server's background maintenance (retention, retrying open erasures).

        Only the middleware calls this: a CLI command that builds a Runtime must not start it.
        """
        await self.ensure_started()
        interval = self.settings.audit.retention_interval_seconds
        if self._maintenance is None and self.rights is not None and interval > 0:
            from .rights.retention import periodic_maintenance

            self._maintenance = asyncio.create_task(
                periodic_maintenance(self.retention, self.rights.retry_open, interval=interval),
                name="privacy-maintenance",
            )

    async def stop(self) -> None:
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
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
