"""Breach response assembled from settings and policy: one object the runtime holds."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..loops import Stopper
from ..policy.schema import Policy
from ..store import Database
from .canaries import CanaryKey, CanaryRegistry
from .containment import Suspensions
from .monitor import BreachMonitor
from .sinks import EmailSink, Sink, WebhookSink
from .witness import WitnessRelay

logger = logging.getLogger("privacy_middleware.breach")


def build_sinks(settings: Any, http: Any) -> list[Sink]:
    """The configured finding sinks (none when nothing is configured)."""
    config = settings.breach
    sinks: list[Sink] = []
    if config.webhook_url:
        if config.webhook_secret is None:
            from ..errors import ConfigError

            raise ConfigError("PRIVACY_BREACH__WEBHOOK_URL needs PRIVACY_BREACH__WEBHOOK_SECRET to sign deliveries")
        sinks.append(
            WebhookSink(
                config.webhook_url,
                config.webhook_secret.get_secret_value().encode(),
                http,
                timeout=config.sink_timeout_seconds,
            )
        )
    if config.mail_to:
        smtp = settings.smtp
        if not smtp.host:
            from ..errors import ConfigError

            raise ConfigError("PRIVACY_BREACH__MAIL_TO needs the mail server PRIVACY_SMTP__HOST")
        sinks.append(
            EmailSink(
                smtp.host,
                smtp.port,
                smtp.sender,
                list(config.mail_to),
                starttls=smtp.starttls,
                tls=smtp.tls,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                timeout=min(config.sink_timeout_seconds, smtp.timeout_seconds),
                guard=settings.outbound.configured_guard(),
            )
        )
    return sinks


def canary_key(settings: Any) -> CanaryKey:
    return CanaryKey(settings.secret(settings.breach.canary_key, "canary.key", "canary key"))


class BreachService:
    """Built once by the composition root from settings, the policy, the store and the audit writer."""

    def __init__(self, settings: Any, policy: Policy, database: Database, audit: Any, http: Any) -> None:
        rules = policy.breach
        staff = rules.staff_recipients
        if staff is None:
            staff = list(policy.identity.scope_recipients.values())
        self.canaries = CanaryRegistry(database, canary_key(settings))
        self.suspensions = Suspensions(database, audit)
        self.sinks = build_sinks(settings, http)
        self.monitor = BreachMonitor(
            database,
            rules,
            emit=audit.emit,
            canaries=self.canaries,
            suspensions=self.suspensions,
            sinks=self.sinks,
            staff_recipients=frozenset(staff),
            poll_seconds=settings.breach.poll_seconds,
        )
        self.enabled = settings.breach.monitor
        self._refresher: asyncio.Task[None] | None = None
        self._stopper = Stopper()
        webhooks = [sink for sink in self.sinks if sink.name == "webhook"]
        self.witness = WitnessRelay(
            database,
            witness_url=settings.breach.witness_url,
            http=http,
            deliver=self._checkpoint_delivery(webhooks) if webhooks and settings.breach.webhook_checkpoints else None,
            timeout=settings.breach.sink_timeout_seconds,
        )
        if settings.breach.witness_url or self.witness.deliver is not None:
            self.monitor.extra_work.append(self.witness.poll)

    def _checkpoint_delivery(self, webhooks: list[Sink]) -> Any:
        def deliver(kind: str, uid: str, payload: dict[str, Any]) -> None:
            for sink in webhooks:
                self.monitor.deliver_to(sink, kind, uid, payload)

        return deliver

    async def start(self) -> None:
        """At serving start: the current suspensions, then the monitor (if enabled here) or, on the
        other instances, a loop that keeps this instance's copy of the suspensions current."""
        await self.suspensions.refresh()
        if self.enabled:
            await self.monitor.start()
        elif self._refresher is None:
            self._stopper.reset()
            self._refresher = asyncio.create_task(self._refresh_suspensions(), name="privacy-breach-suspensions")

    async def _refresh_suspensions(self) -> None:
        while not await self._stopper.pause(self.monitor.refresh_seconds):
            try:
                await self.suspensions.refresh()
            except Exception as exc:
                logger.warning("suspension refresh failed (%s); keeping the last known set", type(exc).__name__)

    async def stop(self) -> None:
        await self.monitor.stop()
        await self._stopper.stop(self._refresher)
        self._refresher = None
