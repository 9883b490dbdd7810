"""The one access decision (policy/access.py) on its own: grants with default deny, the subject's
objection and restriction read from the real rights store (SQLite and PostgreSQL), the Art. 21 rule
shared with the consent decision table, and `policy explain` answering like the response filter."""

from __future__ import annotations

import pytest

from privacy_middleware.consent.decisions import Signals, decide
from privacy_middleware.policy.access import Access, grant_for, rights_rule
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
    assert await access.decide("fraud", "user.contact.email", "cus_1", "security") == access.explain(
        "fraud", "user.contact.email"
    )

    await flags.set("cus_1", add_objections=["security"])  # legitimate interest: objectable
    objected = await access.decide("fraud", "user.contact.email", "cus_1", "security")
    assert not objected.allowed and "restricted or objected" in objected.reason
    assert await access.subject_flags("cus_1") == (frozenset({"security"}), False)

    await flags.set("cus_2", restricted=True)
    # Delivery is not allowed under restriction; fraud screening (security) is.
    assert await access.blocked_for("cus_2", "logistics", "delivery")
    assert not await access.blocked_for("cus_2", "fraud", "security")
    assert not await access.blocked_for("cus_3", "logistics", "delivery")


async def test_without_a_flag_store_nobody_is_withheld() -> None:
    access = Access(POLICY)
    assert not await access.blocked_for("cus_1", "logistics", "delivery")
    assert await access.subject_flags("cus_1") == (frozenset(), False)


async def test_an_objection_does_not_reach_a_contract_purpose(database: Database) -> None:
    """Art. 21 reaches legitimate interests, public task and direct marketing, not the performance of
    a contract: an objection recorded against `delivery` (basis contract; the API refuses new ones,
    but a purpose's basis can change with a policy version) neither withholds the subject's data
    from the carrier nor denies the purpose, and both answers come from the same rule."""
    flags = SubjectFlagsCache(database, ttl=0.01)
    access = Access(POLICY, flags)
    await flags.set("cus_1", add_objections=["delivery", "security"])

    assert not await access.blocked_for("cus_1", "logistics", "delivery")
    assert (await access.decide("logistics", "user.name", "cus_1", "delivery")).allowed
    assert await access.blocked_for("cus_1", "fraud", "security")

    objected, restricted = await access.subject_flags("cus_1")
    decision = decide(POLICY, Signals(objected=objected, restricted=restricted))
    assert (decision.allowed("delivery"), decision.reason("delivery")) == (True, "not_consent_based")
    assert (decision.allowed("security"), decision.reason("security")) == (False, "objected")


def test_the_rights_rule_is_the_consent_tables_rows_two_and_three() -> None:
    purposes = POLICY.purposes
    for name in [*purposes, "unknown"]:
        for objected in (frozenset(), frozenset({name})):
            for restricted in (False, True):
                barred = rights_rule(name, purposes.get(name), objected, restricted)
                row = decide(POLICY, Signals(objected=objected, restricted=restricted)).purposes.get(name)
                if row is not None and barred is not None:
                    assert (row.allowed, row.reason) == (False, barred)
                elif row is not None:
                    assert row.reason not in ("restricted", "objected")
    # restriction first; an unknown purpose is objectable (fail closed)
    assert rights_rule("delivery", purposes["delivery"], frozenset({"delivery"}), True) == "restricted"
    assert rights_rule("security", purposes["security"], frozenset(), True) is None
    assert rights_rule("gone", None, frozenset({"gone"}), False) == "objected"
    assert rights_rule("delivery", purposes["delivery"], frozenset({"delivery"}), False) is None


def test_a_tracking_purpose_is_answered_by_the_request_consent_decision() -> None:
    access = Access(POLICY)
    refused = access.purpose("newsletter", decide(POLICY, Signals()))
    assert (refused.allowed, refused.reason) == (False, "default_opt_in")
    objected = access.purpose("newsletter", decide(POLICY, Signals(objected=frozenset({"newsletter"}))))
    assert (objected.allowed, objected.reason) == (False, "objected")
