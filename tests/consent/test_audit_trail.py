"""A subject's consent changes reach the audit trail; a visitor's (no person named) do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from privacy_middleware.store.consent_records import Holder
from support.unit_policy import unit_policy

pytestmark = pytest.mark.anyio


async def test_subject_consent_changes_are_audited_and_visitor_ones_are_not(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}",
        data_dir=tmp_path,
        jwt={"secret": "t" * 40, "algorithms": ["HS256"]},
    )
    runtime = Runtime(settings, policy=unit_policy())
    await runtime.ensure_started()
    try:
        await runtime.consent.set_purposes(Holder.subject("cus_1"), {"newsletter": True})
        await runtime.consent.set_purposes(Holder.visitor("v" * 32), {"newsletter": True})
        await runtime.consent.withdraw(Holder.subject("cus_1"))
        await runtime.audit.flush()
        records = await search(runtime.database, kinds=["api_activity.consent_change"])
    finally:
        await runtime.stop()
    assert [r.subject for r in records] == ["cus_1", "cus_1"]
    assert [(r.detail["granted"], r.detail["denied"], r.detail["source"]) for r in records] == [
        (["newsletter"], [], "api"),
        ([], ["newsletter"], "withdrawal"),
    ]
