"""Shared by the audit steps: queue an event without ever failing a request, read a response value."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..audit.events import AuditEvent
from ..policy.selectors import Selector
from .plan import Exchange


class AuditSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...


logger = logging.getLogger("privacy_middleware.audit")


def emit(audit: AuditSink, build: Any, *args: Any, **kwargs: Any) -> None:
    """Build and queue an event; a builder refusing its input is a bug to log, never a crash."""
    try:
        event: AuditEvent = build(*args, **kwargs)
    except ValueError as exc:
        logger.error("audit event %s not built: %s", getattr(build, "__name__", build), exc)
        return
    audit.emit(event)


def response_value(ex: Exchange, field: Selector) -> str | None:
    if not ex.response_has_json:
        return None
    value = next(iter(field.values(ex.response_json)), None)
    return str(value) if isinstance(value, str | int) else None
