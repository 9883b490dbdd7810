"""Logs an operator can ship: PRIVACY_LOG_LEVEL, and with PRIVACY_LOG_FORMAT=json one JSON object per line.

Each record made while a planned request is served carries its request id and route template; the
access record adds the outcome, status and refusal code. Never a path, a query string, a header, a
token or a personal value: only the route's template and stable codes.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

from .context import current_scope, get_context
from .logscrub import install as install_scrubber
from .logscrub import scrubber

if TYPE_CHECKING:
    from .context import RequestContext
    from .settings import Settings

ROOT_LOGGER = "privacy_middleware"
access_log = logging.getLogger("privacy_middleware.access")
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_HANDLER_MARK = "_privacy_middleware_handler"


def request_id(scope: Any, ctx: RequestContext) -> str:
    """The caller's X-Request-ID when it is a plain token, else a fresh one; the same for the whole request."""
    known = ctx.facts.request_id
    if known is None:
        given = next((v for k, v in scope.get("headers") or [] if k == b"x-request-id"), b"")
        # 128 random bits as 32 hex digits (what uuid4().hex gave, without building a UUID object)
        known = given.decode("ascii") if _SAFE_REQUEST_ID.match(given) else os.urandom(16).hex()
        ctx.facts.request_id = known
    return known


class RequestFields(logging.Filter):
    """Adds `request_id` and `route` to records made while a planned request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = current_scope.get()
        ctx = get_context(scope) if scope is not None else None
        if ctx is not None:
            if not hasattr(record, "request_id"):
                record.request_id = request_id(scope, ctx)
            if not hasattr(record, "route"):
                record.route = ctx.facts.route
        return True


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_logging(settings: Settings) -> None:
    """Apply PRIVACY_LOG_LEVEL to the package's loggers; with json, give them their own JSON handler."""
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(settings.log_level)
    install_scrubber()
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(handler)
    if settings.log_format == "json":
        handler = logging.StreamHandler()
        setattr(handler, _HANDLER_MARK, True)
        handler.setFormatter(json_formatter())
        handler.addFilter(RequestFields())
        handler.addFilter(scrubber())
        logger.addHandler(handler)
        logger.propagate = False  # one JSON object per line, not also a text line from the app's root handler
    else:
        logger.propagate = True


def heard(logger: logging.Logger, level: int) -> bool:
    """Whether a record at `level` would reach a handler: enabled, and some handler on the way up
    takes it (or the last-resort handler does). Asked per request, so a handler added later counts;
    without one, the access record is not built at all (no LogRecord, no request id)."""
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    found = False  # as Logger.callHandlers: the last-resort handler only when there is no handler at all
    while current is not None:
        for handler in current.handlers:
            found = True
            if level >= handler.level:
                return True
        current = current.parent if current.propagate else None
    last = logging.lastResort
    return not found and last is not None and level >= last.level


def log_request(scope: Any, ctx: RequestContext, route: str, outcome: str, status: int, code: str | None) -> None:
    """The access record of one planned request (only when INFO is enabled for privacy_middleware.access)."""
    access_log.info(
        "request",
        extra={
            "request_id": request_id(scope, ctx),
            "route": route,
            "outcome": outcome,
            "status": status,
            "code": code,
        },
    )
