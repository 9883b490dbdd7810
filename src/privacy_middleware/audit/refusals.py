"""Fail-closed refusals are audit events: which rule refused which field on which route, never a value."""

from __future__ import annotations

import logging
from typing import Protocol

from ..errors import PrivacyError
from . import events

logger = logging.getLogger("privacy_middleware")

# Codes that mean "the request differed from the policy's picture of the shop" (DESIGN.md §9).
FAIL_CLOSED_CODES = frozenset(
    {
        "ambiguous_key",
        "duplicate_key",
        "wrong_container_type",
        "json_too_deep",
        "ambiguous_path",
        "card_data_on_unprotected_route",
    }
)


class AuditSink(Protocol):
    def emit(self, event: events.AuditEvent) -> None: ...


def audit_refusal(sink: AuditSink, error: PrivacyError, *, route: str, ip: str | None, subject: str | None) -> None:
    """Record a fail-closed refusal (other refusals are counted in metrics only)."""
    if error.code not in FAIL_CLOSED_CODES:
        return
    related = {"route": route, "code": error.code}
    where = error.extra.get("field")
    if isinstance(where, str):
        related["field"] = where
    try:
        event = events.detection_finding(
            "request_refused",
            title="A request the policy cannot interpret exactly was refused",
            subject=subject,
            severity_id=events.SEVERITY_LOW,
            related=related,
            ip=ip,
        )
    except ValueError as exc:
        logger.error("refusal event not built: %s", type(exc).__name__)
        return
    sink.emit(event)
