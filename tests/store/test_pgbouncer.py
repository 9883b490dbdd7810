"""PRIVACY_DATABASE__PGBOUNCER: the store works through a real PgBouncer in transaction mode
(no prepared-statement caches; leadership as a lease, since there is no session to hold a lock)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from privacy_middleware.audit import LoginGuard, MemoryCounters
from privacy_middleware.audit.attempts_sql import SqlLedger
from privacy_middleware.store import Database
from privacy_middleware.store.leader import Leadership
from support.ports import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
def pgbouncer(postgres_url: str) -> Iterator[str]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        pytest.fail("pgbouncer is needed (the CI installs it)")
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    (directory / "users.txt").write_text('"postgres" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n* = host=127.0.0.1 port=5432\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {directory / 'users.txt'}\npool_mode = transaction\n"
        "default_pool_size = 4\nmax_client_conn = 200\n"
    )
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)
    command = [binary, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        command[1:1] = ["-u", pwd.getpwnam("postgres").pw_name]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        name = postgres_url.rsplit("/", 1)[1]
        deadline = time.monotonic() + 10

        async def ready() -> None:
            conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/{name}", statement_cache_size=0)
            await conn.close()

        while True:
            try:
                asyncio.run(ready())
                break
            except (OSError, asyncpg.PostgresError):
                assert process.poll() is None and time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.1)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{name}"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


async def test_the_store_migrates_counts_and_elects_a_leader_through_pgbouncer(pgbouncer: str) -> None:
    databases = [Database(pgbouncer, pgbouncer=True, pool_size=3) for _ in range(3)]
    try:
        await databases[0].upgrade()
        guards = [LoginGuard(MemoryCounters(), key=b"k" * 32, ledger=SqlLedger(db)) for db in databases]
        results = await asyncio.gather(*(guards[n % 3].reserve("ada@example.com", "203.0.113.5") for n in range(30)))
        assert sum(r.granted for r in results) == 10
        first, second = Leadership(databases[1], holder="a"), Leadership(databases[2], holder="b")
        assert await first.try_acquire() == 1
        assert await second.try_acquire() is None
        assert await first.still_leading()
        await first.release()
        assert await second.try_acquire() == 2
        first.term = 1
        assert not await first.still_leading()  # fenced
    finally:
        for db in databases:
            await db.dispose()
