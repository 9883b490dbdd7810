"""Platform privacy webhooks turned into subject requests: recorded at once, carried out in the
background, so the platform gets its 2xx within its deadline. Rejected deliveries are audited."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..audit import events as audit_events
from .service import AuditSink, RightsService

logger = logging.getLogger("privacy_middleware")


class PlatformRequests:
    def __init__(self, rights: RightsService, audit: AuditSink) -> None:
        self.rights = rights
        self.audit = audit
        self._background: set[asyncio.Task[None]] = set()

    async def submit(self, kind: str, subject: str, source: str, idempotency_key: str) -> None:
        """A verified platform request: recorded durably at once, carried out in the background.

        An erasure that fails midway stays open and is retried by the server's maintenance. A
        whole-shop erasure has no per-subject meaning here: it is recorded in the audit trail for the
        operator, who runs `dsar erase` per subject.
        """
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
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("platform request failed (%s); it stays open for retry", type(task.exception()).__name__)

    async def rejected(self, platform: str, reason: str, client_ip: str | None) -> None:
        self.audit.emit(
            audit_events.detection_finding(
                "webhook_rejected",
                title="A platform webhook failed verification",
                severity_id=audit_events.SEVERITY_MEDIUM,
                related={"platform": platform, "reason": reason},
                ip=client_ip,
            )
        )

    async def drain(self, timeout: float = 10) -> None:
        """Let the requests under way finish (at shutdown)."""
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout)
