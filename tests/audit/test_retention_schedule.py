"""The policy's audit periods (`[audit] raw_ip_days`, `event_days`) are applied by the instance that
leads background maintenance, not only when an operator remembers to: raw values go first, event
bodies later, and the trail still verifies (each purge is explained by a signed marker)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from privacy_middleware.audit import export, login_attempt, search, verify
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from privacy_middleware.store.audit import audit_side_records
from support import shops

pytestmark = pytest.mark.anyio


def make_runtime(tmp_path: Path, interval: float, url: str | None = None) -> Runtime:
    settings = Settings(
        database_url=url or f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": shops.JWT_SECRET, "algorithms": ["HS256"]},
        audit={"retention_interval_seconds": interval},
    )
    return Runtime(settings, policy=shops.policy())


async def side_records(runtime: Runtime) -> int:
    async with runtime.database.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(audit_side_records))).scalar_one())


async def test_the_policys_periods_erase_raw_values_first_and_bodies_later(tmp_path: Path, database_url: str) -> None:
    runtime = make_runtime(tmp_path, 0, database_url)
    await runtime.ensure_started()
    try:
        for n in range(5):
            runtime.audit.emit(
                login_attempt(success=True, subject=f"cust_{n}", ip="203.0.113.5", username=f"u{n}@x.test")
            )
        await runtime.audit.flush()
        assert await side_records(runtime) == 5
        now = datetime.now(UTC)
        kept = await runtime.audit_retention(now=now + timedelta(days=10))
        assert (kept.side_records_erased, kept.events_purged) == (0, 0)
        early = await runtime.audit_retention(now=now + timedelta(days=runtime.policy.audit.raw_ip_days + 1))
        assert (early.side_records_erased, early.events_purged) == (5, 0)
        assert [r.subject for r in await search(runtime.database, kinds=["authentication.logon"])] == [
            f"cust_{n}" for n in range(5)
        ]
        late = await runtime.audit_retention(now=now + timedelta(days=runtime.policy.audit.event_days + 1))
        assert late.events_purged >= 5
        assert all(r.document is None for r in await search(runtime.database, kinds=["authentication.logon"]))
        await runtime.audit.flush()
        await export(runtime.database, tmp_path / "export")
        report = verify(tmp_path / "export", runtime.audit_log.public_key_pem())
        assert report.ok, report
    finally:
        await runtime.stop()


async def test_the_maintenance_leader_applies_them_on_its_own(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, 0.05)
    await runtime.ensure_serving()
    try:
        expired = datetime.now(UTC) - timedelta(days=runtime.policy.audit.event_days + 1)
        runtime.audit.emit(login_attempt(success=False, subject="cust_old", ip="203.0.113.9", time=expired))
        runtime.audit.emit(login_attempt(success=False, subject="cust_new", ip="203.0.113.9"))
        await runtime.audit.flush()
        for _ in range(400):  # the leader's next rounds (every 50 ms here)
            found = await search(runtime.database, kinds=["authentication.logon"])
            if any(r.document is None for r in found):
                break
            await asyncio.sleep(0.05)
        # the expired event's body is gone, and with it who it was about; the recent one is whole
        assert [(r.subject, r.document is None) for r in found] == [(None, True), ("cust_new", False)]
        assert await search(runtime.database, subject="cust_old") == []
        assert await search(runtime.database, kinds=["log.retention_purge"])
    finally:
        await runtime.stop()
