"""The breach monitor: follows the stored audit trail and turns accesses into findings.

It reads the trail itself (not the writer's queue), so it sees every path that records a
disclosure, whichever process wrote it: responses, PrivacyTransport, the proxy, exports and CLI
commands. At start it replays the last `baseline_days` of accesses to learn baselines without
raising anything, then polls for new leaves. Each finding is appended to the audit trail (so it
is tamper-evident), deduplicated, pushed to the sinks, and, when the policy says so, contained.
Run it on one instance per store (PRIVACY_BREACH__MONITOR): each monitor raises its own findings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..audit.events import AuditEvent
from ..audit.query import MAX_LIMIT, search
from ..loops import Stopper
from ..policy.schema import Breach
from ..store import Database
from .canaries import CanaryRegistry
from .containment import Suspensions
from .detectors import BulkDetector
from .facts import ACCESS_PREFIX, Access, access_from
from .findings import Deduplicator, Finding
from .sinks import Sink

logger = logging.getLogger("privacy_middleware.breach")

MONITOR_PRINCIPAL = "breach-monitor"
LEARN_LIMIT = 200_000


class BreachMonitor:
    def __init__(
        self,
        database: Database,
        rules: Breach,
        *,
        emit: Callable[[AuditEvent], None],
        canaries: CanaryRegistry | None,
        suspensions: Suspensions,
        sinks: list[Sink],
        staff_recipients: frozenset[str],
        poll_seconds: float = 0.25,
        refresh_seconds: float = 2.0,
        chain: str = "default",
    ) -> None:
        self.database = database
        self.rules = rules
        self.emit = emit
        self.canaries = canaries
        self.suspensions = suspensions
        self.sinks = sinks
        self.detector = BulkDetector(rules, staff_recipients)
        self.dedup = Deduplicator(rules.dedup_seconds)
        self.poll_seconds = poll_seconds
        self.refresh_seconds = refresh_seconds
        self.chain = chain
        self.cursor: int | None = None
        self.raised: list[AuditEvent] = []
        self.extra_work: list[Callable[[], Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopper = Stopper()
        self._deliveries: set[asyncio.Task[Any]] = set()
        self._last_refresh = 0.0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stopper.reset()
            self._task = asyncio.create_task(self._run(), name="privacy-breach-monitor")

    async def stop(self) -> None:
        await self._stopper.stop(self._task)
        self._task = None
        if self._deliveries:
            await asyncio.wait(self._deliveries, timeout=10)

    async def _run(self) -> None:
        while self.cursor is None and not self._stopper.stopping:
            try:
                await self.refresh()
                await self.learn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("breach monitor start postponed (%s)", type(exc).__name__)
                if await self._stopper.pause(self.refresh_seconds):
                    return
        while not self._stopper.stopping:
            try:
                busy = await self.poll()
                if time.monotonic() - self._last_refresh >= self.refresh_seconds:
                    await self.refresh()
                for work in self.extra_work:
                    await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("breach monitor poll failed (%s)", type(exc).__name__)
                busy = False
            if await self._stopper.pause(0 if busy else self.poll_seconds):
                return

    async def refresh(self) -> None:
        self._last_refresh = time.monotonic()
        if self.canaries is not None:
            await self.canaries.refresh()
        await self.suspensions.refresh()

    # -- reading the trail ----------------------------------------------------------------------

    async def learn(self) -> int:
        """Replay recent accesses into the baselines (no findings); the cursor starts after them."""
        head = await self._last_seq()
        since = datetime.now(UTC) - timedelta(days=self.rules.baseline_days)
        cursor = -1
        learnt = 0
        while learnt < LEARN_LIMIT and cursor < head:
            records = await search(
                self.database,
                kinds=[ACCESS_PREFIX + "*"],
                since=since,
                after_seq=cursor,
                limit=MAX_LIMIT,
                chain=self.chain,
            )
            if not records:
                break
            for record in records:
                if record.seq > head:
                    break
                cursor = record.seq
                access = access_from(record.document) if record.document else None
                if access is not None:
                    self.detector.observe(access, learning=True)
                    learnt += 1
            else:
                continue
            break
        self.cursor = head
        return learnt

    async def _last_seq(self) -> int:
        from ..store.audit import read_head

        async with self.database.connect() as conn:
            head = await read_head(conn, self.chain)
        return (head.size - 1) if head is not None else -1

    async def poll(self) -> bool:
        """Process the leaves written since the last poll; True when a full page was read."""
        if self.cursor is None:
            return False
        records = await search(
            self.database, kinds=[ACCESS_PREFIX + "*"], after_seq=self.cursor, limit=MAX_LIMIT, chain=self.chain
        )
        if records and self.canaries is not None:
            await self.canaries.refresh()  # a canary planted by another process a moment ago counts
        for record in records:
            self.cursor = record.seq
            access = access_from(record.document) if record.document else None
            if access is not None:
                await self.handle(access)
        return len(records) == MAX_LIMIT

    # -- findings -------------------------------------------------------------------------------

    async def handle(self, access: Access) -> None:
        findings: list[Finding] = []
        if self.canaries is not None and not access.own:
            hits = self.canaries.matches(access.subjects)
            if hits:
                who = f"principal:{access.principal}" if access.principal else f"recipient:{access.recipient}"
                keys = [who]
                findings.append(
                    Finding(
                        name="canary_accessed",
                        principal=access.principal,
                        recipient=access.recipient,
                        route=access.route,
                        network=access.network,
                        time_us=access.time_us,
                        keys=tuple(keys),
                        related={
                            "canaries": [digest[:16] for digest in hits],
                            "action": access.action,
                            "access_uid": access.uid,
                        },
                    )
                )
        findings.extend(self.detector.observe(access))
        for finding in findings:
            await self.raise_finding(finding)

    async def raise_finding(self, finding: Finding) -> AuditEvent | None:
        if not self.dedup.allow(finding):
            return None
        event = finding.event()
        self.emit(event)
        self.raised.append(event)
        del self.raised[:-100]
        logger.warning("breach finding %s (severity %d)", finding.name, finding.severity)
        await self._contain(finding, event)
        self.deliver("finding", event.uid, {"finding": event.document()})
        return event

    async def _contain(self, finding: Finding, event: AuditEvent) -> None:
        mode = self.rules.containment
        if mode == "off" or finding.name not in self.rules.contain_on:
            return
        target = finding.principal if mode == "principal" else finding.recipient
        if not target:
            return
        try:
            await self.suspensions.suspend(
                mode, target, by=MONITOR_PRINCIPAL, reason=finding.name, finding_uid=event.uid
            )
        except Exception as exc:
            logger.error("containment failed (%s)", type(exc).__name__)

    def deliver(self, kind: str, uid: str, payload: dict[str, Any]) -> None:
        """Push to every sink in the background: a slow receiver never delays detection."""
        for sink in self.sinks:
            self.deliver_to(sink, kind, uid, payload)

    def deliver_to(self, sink: Sink, kind: str, uid: str, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(sink.deliver(kind, uid, payload), name=f"privacy-breach-{sink.name}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
