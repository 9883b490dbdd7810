"""Shared by the audit steps: queue an event without ever failing a request, read a response value."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..audit.events import AuditEvent
from ..fields.selectors import Selector
from .plan import Exchange

if TYPE_CHECKING:
    from ..runtime import Runtime

logger = logging.getLogger("privacy_middleware.audit")


def emit(runtime: Runtime, build: Any, *args: Any, **kwargs: Any) -> None:
    """Build and queue an event; a builder refusing its input is a bug to log, never a crash."""
    try:
        event: AuditEvent = build(*args, **kwargs)
    except ValueError as exc:
        logger.error("audit event %s not built: %s", getattr(build, "__name__", build), exc)
        return
    runtime.audit.emit(event)


def response_value(ex: Exchange, field: Selector) -> str | None:
    if not ex.response_has_json:
        return None
    value = next(iter(field.values(ex.response_json)), None)
    return str(value) if isinstance(value, str | int) else None
