"""Exporting many records keeps the field engine's memory flat: shapes are compiled once, and the
engine's disclosure-plan cache does not grow by one plan per record."""

from __future__ import annotations

from pathlib import Path

import pytest

import privacy_middleware
from privacy_middleware.fields.engine import PLAN_CACHE_SIZE, FieldEngine, Pseudonymiser
from privacy_middleware.policy.load import load_policy
from privacy_middleware.rights.adapter import ShopRecord
from privacy_middleware.rights.export import reveal_record

pytestmark = pytest.mark.anyio

DEMO_POLICY = Path(privacy_middleware.__file__).parent / "demo" / "policy.toml"


async def test_exporting_ten_thousand_records_keeps_the_plan_cache_bounded() -> None:
    policy = load_policy(DEMO_POLICY)
    engine = FieldEngine(policy, Pseudonymiser(b"k" * 32))
    for number in range(10_000):
        record = ShopRecord(
            kind="order",
            id=f"ord_{number}",
            data={"customer_id": "cus_ada", "customer": {"email": "ada@example.com", "name": "Ada"}},
            shape="order",
        )
        entry = await reveal_record(engine, policy, record, "cus_ada")
        assert entry["categories"] == ["user.contact.email", "user.id", "user.name"]
    assert engine.cached_plans == 1
    assert engine.cached_plans <= PLAN_CACHE_SIZE
