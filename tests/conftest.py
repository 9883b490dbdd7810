"""Shared fixtures: real SQLite and PostgreSQL databases, a Redis key prefix, anyio on asyncio.

PostgreSQL and Redis tests use the real servers on 127.0.0.1; each test gets its own database
(created and dropped here) or key prefix, so concurrent runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from privacy_middleware.store import Database
from support.dns import FakeDNS
from support.dns import fake_dns as fake_dns  # the fixture, for tests that set their own answers
from support.postgres import fresh_postgres_database

REDIS_TEST_URL = os.environ.get("PRIVACY_TEST_REDIS", "redis://127.0.0.1:6379/0")

# Tests assert behaviour, never time (performance is measured in bench/): hypothesis's default 200 ms
# per-example deadline fails a correct example that a loaded machine runs slowly (a first import, a
# cold cache), so no test has one unless it sets its own.
hypothesis_settings.register_profile("behaviour", deadline=None)
hypothesis_settings.load_profile("behaviour")


@pytest.fixture(autouse=True)
def reserved_names_resolve(fake_dns: FakeDNS) -> FakeDNS:
    """Reserved example names (`*.example`, `example.com`, `*.test`) never resolve for real; the
    outbound guard resolves every destination, so they answer a public address here (pytest-httpx
    or a loopback server still answers the call itself). See support/dns.py."""
    return fake_dns


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test."""
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL, once for real SQLite and once for real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}"
    else:
        async with fresh_postgres_database() as url:
            yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database: the same repository tests run on real SQLite and real PostgreSQL."""
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_database())
        db = Database(url)
        stack.push_async_callback(db.dispose)
        await db.upgrade()
        yield db


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Drive an ASGI app's lifespan (startup, then shutdown), as uvicorn does."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    getter = asyncio.ensure_future(outbox.get())
    await asyncio.wait({getter, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not getter.done():
        getter.cancel()
        if task.done():
            task.result()  # re-raise what killed the app during start-up
        raise RuntimeError("the app did not answer lifespan.startup within 30 s")
    started = getter.result()
    if started["type"] != "lifespan.startup.complete":
        task.cancel()
        raise RuntimeError(started.get("message", "startup failed"))
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


@pytest.fixture
def asgi_lifespan() -> Any:
    return lifespan


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix owned by one test; its keys are deleted afterwards."""
    import redis

    prefix = f"pm-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
