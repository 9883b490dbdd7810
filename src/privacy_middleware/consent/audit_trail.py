"""A subject's consent changes go to the audit trail (visitors' do not: they name no person)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from ..audit import events as audit_events
from ..audit.events import AuditEvent
from ..store.consent_records import ConsentRecord


class AuditSinkLike(Protocol):
    def emit(self, event: AuditEvent) -> None: ...


def consent_change_recorder(audit: AuditSinkLike) -> Callable[[ConsentRecord], Awaitable[None]]:
    """A ConsentService listener that records each change of a subject's consent."""

    async def consent_changed(record: ConsentRecord) -> None:
        if record.holder.kind != "subject":
            return
        audit.emit(
            audit_events.consent_change(
                subject=record.holder.id,
                purposes_granted=[p for p, v in record.purposes.items() if v],
                purposes_denied=[p for p, v in record.purposes.items() if not v],
                source=record.method,
                policy_version=record.policy_version,
            )
        )

    return consent_changed
