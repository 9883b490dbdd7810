"""The policy version history when several instances (or workers) start at the same moment."""

import asyncio

import pytest

from privacy_middleware.policy.load import validate_policy
from privacy_middleware.store import Database
from privacy_middleware.store.policies import policy_history, record_policy_version

pytestmark = pytest.mark.anyio

POLICY = validate_policy(
    {
        "policy": {"name": "t", "version": "7", "effective_date": "2026-01-01"},
        "categories": {"user.contact.email": {}},
        "purposes": {"order_fulfilment": {"legal_basis": "contract"}},
    }
)


async def test_instances_starting_together_record_the_policy_once_and_all_start(database: Database) -> None:
    # Each instance has its own engine (its own connections), as separate processes would.
    instances = [Database(database.url.render_as_string(hide_password=False)) for _ in range(6)]
    try:
        results = await asyncio.gather(*(record_policy_version(db, POLICY) for db in instances), return_exceptions=True)
    finally:
        for db in instances:
            await db.dispose()
    assert [r for r in results if r is not None] == []  # no instance failed to start
    history = await policy_history(database)
    assert [entry["version"] for entry in history] == ["7"]
