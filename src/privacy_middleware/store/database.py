"""The one storage layer: an async SQLAlchemy Core engine on SQLite (default) or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import ConfigError, StoreUnreachable

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./privacy-middleware.db"


def normalise_url(url: str) -> sa.URL:
    """Accept the URLs people actually write and pick the async driver for them."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"PRIVACY_DATABASE_URL is not a database URL: {exc.__class__.__name__}") from None
    backend = parsed.get_backend_name()
    if backend in {"postgres", "postgresql"}:
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ConfigError(f"unsupported database {backend!r}: use sqlite or postgresql")


def redact_url(url: str | sa.URL) -> str:
    """The URL as it may appear in a log or an error: never with its password."""
    try:
        parsed = url if isinstance(url, sa.URL) else make_url(url)
    except ArgumentError:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


SQLITE_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}


def _sqlite_pragmas(synchronous: str) -> Callable[[Any, Any], None]:
    """The pragmas of every SQLite connection. WAL lets readers run beside the writer; FULL makes
    each commit wait for its WAL write to reach the disk (NORMAL only at checkpoints)."""
    level = SQLITE_SYNCHRONOUS[synchronous]

    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={level}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return apply


async def drop_session(conn: AsyncConnection | None) -> None:
    """Close a connection held out of the pool together with its server session (and what the
    session holds: an advisory lock, a half-done statement); back in the pool it would keep both."""
    if conn is None:
        return
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()


def _unique_statement_name() -> str:
    return f"__privacy_{uuid.uuid4().hex}__"


class Database:
    """Owns the engine. Built once from Settings and passed to every repository."""

    def __init__(
        self,
        url: str = DEFAULT_DATABASE_URL,
        *,
        pool_size: int = 10,
        max_overflow: int | None = None,
        pool_timeout: float = 30.0,
        pool_recycle: float = -1,
        connect_timeout: float = 10.0,
        pgbouncer: bool = False,
        sqlite_synchronous: str = "full",
        sqlite_audit_cache_mb: int = 64,
    ) -> None:
        if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise ConfigError(f"unsupported SQLite synchronous level {sqlite_synchronous!r}: use full or normal")
        # applied to every SQLite connection: the engine's, and those the audit writer opens itself
        self.sqlite_pragmas: Callable[[Any, Any], None] = _sqlite_pragmas(sqlite_synchronous)
        if sqlite_audit_cache_mb < 0:
            raise ConfigError("the audit writer's SQLite page cache cannot be negative (0: SQLite's default)")
        # the page cache of the audit writer's bulk connection (MB); see DatabasePoolSettings
        self.sqlite_audit_cache_mb = sqlite_audit_cache_mb
        self.url = normalise_url(url)
        self.display_url = redact_url(self.url)
        self.dialect = self.url.get_backend_name()
        self.pgbouncer = pgbouncer and self.dialect == "postgresql"
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = self.url.database
            if database and database != ":memory:":
                directory = os.path.dirname(os.path.abspath(database))
                os.makedirs(directory, exist_ok=True)
        else:
            kwargs.update(
                pool_size=pool_size,
                max_overflow=pool_size if max_overflow is None else max_overflow,
                pool_timeout=pool_timeout,
                pool_recycle=pool_recycle,
                pool_pre_ping=True,
            )
            connect_args: dict[str, Any] = {"timeout": connect_timeout}
            if pgbouncer:
                # PgBouncer in transaction mode hands each transaction to any server connection:
                # no prepared-statement caches, and unique names for the statements asyncpg prepares.
                connect_args.update(
                    statement_cache_size=0,
                    prepared_statement_cache_size=0,
                    prepared_statement_name_func=_unique_statement_name,
                )
            kwargs["connect_args"] = connect_args
        # Parameters are personal values and ciphertext: never in SQLAlchemy's log or its errors.
        self.engine: AsyncEngine = create_async_engine(self.url, hide_parameters=True, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", self.sqlite_pragmas)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, committed on success."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def check(self) -> None:
        """`StoreUnreachable` with a clear, password-free diagnosis when the database cannot be reached."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except (OSError, OperationalError, DBAPIError) as exc:
            reason = exc.__class__.__name__
            if isinstance(exc, DBAPIError) and exc.orig is not None:
                reason = exc.orig.__class__.__name__
            raise StoreUnreachable(f"cannot reach the database at {self.display_url} ({reason})") from None

    async def upgrade(self) -> list[int]:
        """Apply pending migrations; returns the versions applied."""
        from .migrations import upgrade

        return await upgrade(self)

    async def dispose(self) -> None:
        await self.engine.dispose()
