"""The rights store on real SQLite and PostgreSQL: idempotent submission, step history, flags."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from privacy_middleware.store import Database
from privacy_middleware.store.consent import ConsentRepository
from privacy_middleware.store.consent_records import ConsentRecord, Holder
from privacy_middleware.store.rights import (
    KeyReused,
    RightsRepository,
    Step,
    forget_consent,
    subject_flags,
    update_flags,
)

pytestmark = pytest.mark.anyio
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def due(days: int = 30) -> dt.datetime:
    return NOW + dt.timedelta(days=days)


async def test_submission_is_idempotent_by_key_and_by_open_request(database: Database) -> None:
    repo = RightsRepository(database)
    first, new = await repo.submit(
        kind="erasure", subject="cus_1", principal="cus_1", due_at=due(), idempotency_key="k-1", now=NOW
    )
    assert new and first.status == "received" and first.due_at == due()
    again, new = await repo.submit(
        kind="erasure", subject="cus_1", principal="cus_1", due_at=due(), idempotency_key="k-1", now=NOW
    )
    assert not new and again.id == first.id
    open_one, new = await repo.submit(kind="erasure", subject="cus_1", principal="cus_1", due_at=due(), now=NOW)
    assert not new and open_one.id == first.id
    other, new = await repo.submit(kind="erasure", subject="cus_2", principal="cus_2", due_at=due(), now=NOW)
    assert new and other.id != first.id
    with pytest.raises(KeyReused):
        await repo.submit(kind="erasure", subject="cus_2", principal="cus_2", due_at=due(), idempotency_key="k-1")
    with pytest.raises(KeyReused):
        await repo.submit(kind="access", subject="cus_1", principal="cus_1", due_at=due(), idempotency_key="k-1")
    fresh, new = await repo.submit(kind="access", subject="cus_1", principal="cus_1", due_at=due(), reuse_open=False)
    assert new and fresh.kind == "access"


async def test_concurrent_submissions_with_one_key_make_one_request(database: Database) -> None:
    repo = RightsRepository(database)
    results = await asyncio.gather(
        *[
            repo.submit(
                kind="erasure",
                subject="cus_1",
                principal="cus_1",
                due_at=due(),
                idempotency_key="same",
                reuse_open=False,
            )
            for _ in range(5)
        ]
    )
    assert len({r.id for r, _ in results}) == 1
    assert sum(new for _, new in results) == 1


async def test_steps_name_the_failure_and_a_done_step_clears_it(database: Database) -> None:
    repo = RightsRepository(database)
    request, _ = await repo.submit(
        kind="erasure", subject="cus_1", principal="admin", due_at=due(), reason="ticket 7", now=NOW
    )
    failed = await repo.record_step(request.id, Step("shop", "failed", NOW), error="shop timed out", count_attempt=True)
    assert failed.is_open and failed.failed_step == "shop" and failed.error == "shop timed out"
    assert failed.attempts == 1
    done = await repo.record_step(
        request.id,
        Step("shop", "done", NOW, {"deleted": ["order:1"]}),
        status="completed",
        result={"receipt": "jws"},
    )
    assert done.status == "completed" and done.failed_step is None and done.completed_at is not None
    assert [(s.name, s.outcome) for s in done.steps] == [
        ("received", "done"),
        ("shop", "failed"),
        ("shop", "done"),
    ]
    assert done.steps[-1].detail == {"deleted": ["order:1"]}
    assert done.result == {"receipt": "jws"} and done.reason == "ticket 7"
    assert (await repo.completed("cus_1", "erasure")).id == request.id  # type: ignore[union-attr]
    assert await repo.open_requests("erasure") == []
    with pytest.raises(LookupError):
        await repo.record_step("dsr_missing", Step("x", "done", NOW))


async def test_listing_puts_overdue_open_requests_first(database: Database) -> None:
    repo = RightsRepository(database)
    now = dt.datetime.now(dt.UTC)
    on_time, _ = await repo.submit(kind="access", subject="a", principal="a", due_at=now + dt.timedelta(days=3))
    late, _ = await repo.submit(kind="erasure", subject="b", principal="b", due_at=now - dt.timedelta(days=1))
    later, _ = await repo.submit(kind="erasure", subject="c", principal="c", due_at=now - dt.timedelta(days=5))
    closed, _ = await repo.submit(kind="access", subject="d", principal="d", due_at=now - dt.timedelta(days=9))
    await repo.record_step(closed.id, Step("export", "done", now), status="completed")
    listing = await repo.listing()
    assert [r.id for r in listing[:2]] == [later.id, late.id]
    assert {r.id for r in listing[2:]} == {on_time.id, closed.id}
    assert [r.overdue() for r in listing] == [True, True, False, False]
    assert [r.id for r in await repo.listing(status=["completed"])] == [closed.id]


async def test_subject_flags_default_then_change(database: Database) -> None:
    assert (await subject_flags(database, "cus_1")).restricted is False
    assert (await subject_flags(database, "cus_1")).objections == frozenset()
    await update_flags(database, "cus_1", restricted=True, add_objections=["analytics", "marketing"])
    flags = await update_flags(database, "cus_1", remove_objections=["marketing"])
    assert flags.restricted is True and flags.objections == {"analytics"}
    read = await subject_flags(database, "cus_1")
    assert read.restricted and read.objects_to("analytics") and not read.objects_to("marketing")
    assert (await subject_flags(database, "cus_2")).restricted is False


async def test_concurrent_objections_are_all_kept(database: Database) -> None:
    purposes = [f"purpose_{i}" for i in range(8)]
    await asyncio.gather(*[update_flags(database, "cus_1", add_objections=[p]) for p in purposes])
    assert (await subject_flags(database, "cus_1")).objections == set(purposes)


async def test_forgetting_consent_drops_the_subject_and_their_visitors_only(database: Database) -> None:
    repo = ConsentRepository(database)

    def record(holder: Holder) -> ConsentRecord:
        return ConsentRecord(
            id=ConsentRecord.new_id(),
            holder=holder,
            purposes={"analytics": True},
            policy_version="1",
            method="api",
            recorded_at=NOW,
        )

    await repo.append(record(Holder.visitor("v-ada")))
    await repo.append(record(Holder.visitor("v-bob")))
    await repo.link("v-ada", "cus_ada", lambda visitor, subject: record(Holder.subject("cus_ada")), at=NOW)
    await repo.append(record(Holder.subject("cus_bob")))
    dropped = await forget_consent(database, "cus_ada")
    assert dropped == {"records": 2, "links": 1}
    assert await repo.history(Holder.subject("cus_ada")) == []
    assert await repo.history(Holder.visitor("v-ada")) == []
    assert await repo.visitors_of("cus_ada") == []
    assert len(await repo.history(Holder.visitor("v-bob"))) == 1
    assert len(await repo.history(Holder.subject("cus_bob"))) == 1
    assert await forget_consent(database, "cus_ada") == {"records": 0, "links": 0}


async def test_kept_exports_and_flags_are_forgotten_with_the_subject(database: Database) -> None:
    repo = RightsRepository(database)
    await repo.keep_export("dsr_1", "cus_1", "pe1.a")
    await repo.keep_export("dsr_1", "cus_1", "pe1.b")  # re-kept: replaced
    await repo.keep_export("dsr_2", "cus_2", "pe1.c")
    await update_flags(database, "cus_1", restricted=True)
    assert await repo.kept_export("dsr_1") == ("cus_1", "pe1.b")
    assert await repo.forget_subject("cus_1") == {"exports": 1, "flags": 1}
    assert await repo.kept_export("dsr_1") is None
    assert await repo.kept_export("dsr_2") == ("cus_2", "pe1.c")
