"""Retention: the policy's rules per category applied to the shop's data, so nothing is kept past
its period. `run(dry_run=True)` only reports; a real run deletes or anonymises through the shop
adapter and audits every item it changed. `periodic_maintenance` is the server's background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..audit.events import AuditEvent, data_access
from ..policy.schema import Policy, RetentionRule
from .adapter import RetentionItem, ShopAdapter, ShopAdapterError

log = logging.getLogger("privacy_middleware.rights.retention")
RETENTION_PRINCIPAL = "privacy-middleware:retention"
BATCH = 200


class AuditSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...


@dataclass(slots=True)
class RuleOutcome:
    category: str
    action: str
    days: int
    cutoff: dt.datetime
    reason: str
    found: int = 0
    changed: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "action": self.action,
            "days": self.days,
            "cutoff": self.cutoff.isoformat(),
            "reason": self.reason,
            "found": self.found,
            "changed": self.changed,
            "error": self.error,
        }


@dataclass(slots=True)
class RetentionReport:
    run_id: str
    dry_run: bool
    started_at: dt.datetime
    rules: list[RuleOutcome] = field(default_factory=list)

    @property
    def found(self) -> int:
        return sum(r.found for r in self.rules)

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.rules)

    @property
    def ok(self) -> bool:
        return all(r.error is None for r in self.rules)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "found": self.found,
            "changed": self.changed,
            "ok": self.ok,
            "rules": [r.to_json() for r in self.rules],
        }


Progress = Callable[[RuleOutcome, int, int], None]  # (rule, done so far, total for the rule)


def _audit_handle(item: RetentionItem) -> str:
    """The audit event's subject: the person when the shop knows them, else the item itself."""
    return item.subject or f"{item.kind}:{item.id}"[:200]


class RetentionRunner:
    def __init__(
        self,
        policy: Policy,
        adapter: ShopAdapter,
        *,
        audit: AuditSink | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.policy = policy
        self.adapter = adapter
        self.audit = audit
        self.clock = clock

    def _audit(self, rule: RetentionRule, items: list[RetentionItem]) -> None:
        if self.audit is None:
            return
        for item in items:
            self.audit.emit(
                data_access(
                    principal=RETENTION_PRINCIPAL,
                    subject=_audit_handle(item),
                    categories=[item.category],
                    purpose=rule.purpose or "retention",
                    action="erase",
                    decision="allowed",
                    promise=f"retention_{rule.action}",
                    fields=[],
                    record_count=1,
                )
            )

    async def run(self, *, dry_run: bool = False, progress: Progress | None = None) -> RetentionReport:
        now = self.clock()
        report = RetentionReport(run_id="ret_" + uuid.uuid4().hex[:16], dry_run=dry_run, started_at=now)
        for rule in self.policy.retention:
            outcome = RuleOutcome(
                category=rule.category,
                action=rule.action,
                days=rule.days,
                cutoff=now - dt.timedelta(days=rule.days),
                reason=rule.reason,
            )
            report.rules.append(outcome)
            try:
                items = await self.adapter.expired(rule.category, outcome.cutoff)
            except ShopAdapterError as exc:
                outcome.error = str(exc)
                continue
            outcome.found = len(items)
            if progress is not None:
                progress(outcome, 0, len(items))
            if dry_run:
                continue
            for start in range(0, len(items), BATCH):
                batch = items[start : start + BATCH]
                try:
                    outcome.changed += await self.adapter.apply_retention(batch, rule.action)
                except ShopAdapterError as exc:
                    outcome.error = str(exc)
                    break
                self._audit(rule, batch)
                if progress is not None:
                    progress(outcome, start + len(batch), len(items))
        log.info(
            "retention run %s: %d found, %d changed%s",
            report.run_id,
            report.found,
            report.changed,
            " (dry run)" if dry_run else "",
        )
        return report


async def periodic_maintenance(
    runner: RetentionRunner,
    retry_open: Callable[[], Any] | None = None,
    *,
    interval: float = 3600.0,
    stop: asyncio.Event | None = None,
) -> None:
    """The server's background task: retention, then resuming open erasures, every `interval` s.

    Errors are logged and the loop goes on; it ends when `stop` is set or the task is cancelled.
    """
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            await runner.run()
            if retry_open is not None:
                await retry_open()
        except Exception as exc:
            log.error("rights maintenance failed (%s)", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
