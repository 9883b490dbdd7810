"""Log lines never carry a query string, a header value, an SQL parameter or a fetched row.

The libraries the middleware runs on log what passes through them when their loggers are turned up:
uvicorn's access log and httpx's request log print full URLs (tokens, e-mail addresses and order
access keys travel in query strings), httpcore's DEBUG trace prints every response header
(`set-cookie`, `location`), SQLAlchemy's engine log prints statement parameters (INFO) and rows
(DEBUG), and aiosqlite's DEBUG log prints each call with its parameters. A filter on those loggers
(and on every logger below them, filters do not inherit) rewrites each record before it is
formatted: query strings cut at `?`, header values, parameters and rows replaced by a placeholder,
the client address of uvicorn's access line cut to its network (IPv4 /24, IPv6 /48).
Installed by the middleware and `serve`; the project's own loggers get it too, as a safety net.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from .netaddr import network_hint

SCRUBBED_LOGGERS = (
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "uvicorn.asgi",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.connection_pool",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.engine.Engine",
    "sqlalchemy.pool",
    "aiosqlite",
    "asyncpg",
    "privacy_middleware",
)


class _Hidden(str):
    """The placeholder, shown the same by %s and %r."""

    def __repr__(self) -> str:
        return str(self)


HIDDEN = _Hidden("[redacted]")
# A query string: a `?` right after a path or host character (not SQL's ` ?`, `(?` and `,?` placeholders).
_QUERY = re.compile(r"(?<=[\w/.%~-])\?[^\s\"'<>]*")
# httpcore's trace shows headers as a list of byte-string pairs: (b'set-cookie', b'sid=...').
_HEADER_PAIR = re.compile(r"""\((b'[^']*'|b"[^"]*"), (?:b'(?:[^'\\]|\\.)*'|b"(?:[^"\\]|\\.)*")\)""")


def _scrub_text(text: str) -> str:
    if "?" in text:
        text = _QUERY.sub("?" + HIDDEN, text)
    if "(b'" in text or '(b"' in text:
        text = _HEADER_PAIR.sub(lambda m: f"({m.group(1)}, b'{HIDDEN}')", text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if type(value).__name__ == "URL":  # httpx.URL, starlette's URL
        return _scrub_text(str(value))
    return value


def _call_name(value: Any) -> Any:
    """aiosqlite logs `functools.partial(execute, sql, params)`: keep the method's name only."""
    if isinstance(value, functools.partial):
        return f"{getattr(value.func, '__name__', 'call')}(...)"
    if isinstance(value, BaseException):
        return type(value).__name__
    return value


def _sql_record(record: logging.LogRecord) -> None:
    """SQLAlchemy's engine log: statements stay (they hold placeholders), values go."""
    if not isinstance(record.args, tuple) or not isinstance(record.msg, str):
        return
    if record.msg.startswith("[%s] %r") and len(record.args) >= 2:  # statement parameters
        record.args = (record.args[0], HIDDEN, *record.args[2:])
    elif record.msg in ("Row %r", "Col %r"):
        record.args = (HIDDEN,)


def _access_record(record: logging.LogRecord) -> None:
    """uvicorn's access line starts with the client's `ip:port`: keep only its network."""
    if isinstance(record.args, tuple) and record.args and isinstance(record.args[0], str):
        host = record.args[0].rsplit(":", 1)[0] if record.args[0].count(":") == 1 else record.args[0]
        record.args = (network_hint(host) or HIDDEN, *record.args[1:])


class LogScrubber(logging.Filter):
    """Rewrites a record's message and arguments in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name == "uvicorn.access":
            _access_record(record)
        elif name.startswith("sqlalchemy.engine"):
            _sql_record(record)
            return True  # statements hold placeholders only
        elif name.startswith("aiosqlite") and isinstance(record.args, tuple):
            record.args = tuple(_call_name(arg) for arg in record.args)
        if isinstance(record.msg, str) and not record.args:
            record.msg = _scrub_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _scrub(value) for key, value in record.args.items()}
        return True


# The name earlier versions installed under; the filter does more than query strings now.
QueryStringFilter = LogScrubber
_FILTER = LogScrubber()


def install() -> None:
    """Idempotent: one filter on each scrubbed logger and on every logger that exists below one."""
    existing = [name for name in logging.root.manager.loggerDict if isinstance(name, str)]
    names = set(SCRUBBED_LOGGERS)
    names.update(name for name in existing if any(name.startswith(prefix + ".") for prefix in SCRUBBED_LOGGERS))
    for name in sorted(names):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def scrubber() -> logging.Filter:
    """The filter itself, for a handler the package owns (the JSON handler)."""
    return _FILTER
