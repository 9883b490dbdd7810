"""Log lines never carry a query string (tokens, e-mail addresses, order access keys travel there).

uvicorn's access log and httpx's request log print full URLs; a filter on their loggers cuts every
URL-like argument at its `?` before the line is formatted. Installed by the middleware and `serve`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

SCRUBBED_LOGGERS = ("uvicorn.access", "uvicorn.error", "httpx", "httpcore", "privacy_middleware")
_QUERY = re.compile(r"\?[^\s\"']*")


def _scrub(value: Any) -> Any:
    text = value if isinstance(value, str) else str(value) if type(value).__name__ == "URL" else None
    if text is None or "?" not in text:
        return value
    return _QUERY.sub("?[redacted]", text)


class QueryStringFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "?" in record.msg and not record.args:
            record.msg = _scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _scrub(value) for key, value in record.args.items()}
        return True


_FILTER = QueryStringFilter()


def install() -> None:
    """Idempotent: one filter per logger."""
    for name in SCRUBBED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
