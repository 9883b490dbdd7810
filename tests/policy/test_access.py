"""The one access decision (policy/access.py) on its own: grants with default deny, and the
subject's objection and restriction read from the real rights store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from privacy_middleware.policy.access import Access, grant_for
from privacy_middleware.rights.flags import SubjectFlagsCache
from privacy_middleware.store import Database
from support.unit_policy import unit_policy

pytestmark = pytest.mark.anyio

POLICY = unit_policy()


def test_the_longest_granted_prefix_wins_and_anything_else_is_dropped() -> None:
    grants = {"user.contact": "mask:full", "user.contact.email": "pseudonymise"}
    assert grant_for(grants, "user.contact.email") == ("pseudonymise", "user.contact.email")
    assert grant_for(grants, "user.contact.address.delivery") == ("mask:full", "user.contact")
    assert grant_for(grants, "user.contactless") == ("drop", None)
    assert grant_for({}, "user.name") == ("drop", None)


def test_explain_says_which_grant_decided() -> None:
    access = Access(POLICY)
    assert access.explain("logistics", "user.contact.email").reason == (
        'granted by recipients.logistics.sees["user.contact.email"] = "mask:email"'
    )
    dropped = access.explain("logistics", "user.id")
    assert not dropped.allowed and "default deny" in dropped.reason
    assert "not a declared recipient" in access.explain("stranger", "user.name").reason


async def test_objection_and_restriction_withhold_a_subject(database: Database) -> None:
    flags = SubjectFlagsCache(database, ttl=0.01)
    access = Access(POLICY, flags)
    assert await access.decide("logistics", "user.name", "cus_1", "delivery") == access.explain(
        "logistics", "user.name"
    )

    await flags.set("cus_1", add_objections=["delivery"])
    objected = await access.decide("logistics", "user.name", "cus_1", "delivery")
    assert not objected.allowed and "restricted or objected" in objected.reason
    assert await access.subject_flags("cus_1") == (frozenset({"delivery"}), False)

    await flags.set("cus_2", restricted=True)
    # Delivery is not allowed under restriction; fraud screening (security) is.
    assert await access.blocked_for("cus_2", "logistics", "delivery")
    assert not await access.blocked_for("cus_2", "fraud", "security")
    assert not await access.blocked_for("cus_3", "logistics", "delivery")


async def test_without_a_flag_store_nobody_is_withheld() -> None:
    access = Access(POLICY)
    assert not await access.blocked_for("cus_1", "logistics", "delivery")
    assert await access.subject_flags("cus_1") == (frozenset(), False)
