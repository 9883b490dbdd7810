import datetime as dt

import pytest
import sqlalchemy as sa

from privacy_middleware.store import Database
from privacy_middleware.store.consent import AlreadyLinked, ConsentRepository, consent_records
from privacy_middleware.store.consent_records import ConsentRecord, ConsentState, Holder

pytestmark = pytest.mark.anyio

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def record(holder: Holder, purposes: dict[str, bool], minutes: int, method: str = "api") -> ConsentRecord:
    return ConsentRecord(
        id=ConsentRecord.new_id(),
        holder=holder,
        purposes=purposes,
        policy_version="2026-03",
        method=method,  # type: ignore[arg-type]
        recorded_at=T0 + dt.timedelta(minutes=minutes),
        ip_prefix="203.0.113.0/24",
        ua_family="firefox",
        receipt="header.payload.signature",
    )


async def test_history_is_kept_in_order_and_reads_back_exactly(database: Database) -> None:
    repo = ConsentRepository(database)
    alice = Holder.subject("alice")
    written = [
        record(alice, {"analytics": True, "marketing": True}, 0, "banner"),
        record(alice, {"marketing": False}, 5, "gpc"),
        record(alice, {"analytics": False, "marketing": False}, 9, "withdrawal"),
    ]
    for r in written:
        await repo.append(r)
    await repo.append(record(Holder.visitor("alice"), {"analytics": True}, 1))

    history = await repo.history(alice)
    assert history == written
    assert all(r.recorded_at.tzinfo is not None for r in history)
    state = await repo.current(alice)
    assert state.denied() == {"analytics", "marketing"}
    assert state.choices["marketing"].method == "withdrawal"


async def test_a_record_id_is_written_once(database: Database) -> None:
    repo = ConsentRepository(database)
    r = record(Holder.subject("bob"), {"analytics": True}, 0)
    await repo.append(r)
    with pytest.raises(sa.exc.IntegrityError):
        await repo.append(r)
    async with database.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(consent_records))).scalar_one()
    assert count == 1


def _move_all(visitor: ConsentState, subject: ConsentState) -> ConsentRecord | None:
    if not visitor.choices:
        return None
    moved = {p: c.granted for p, c in visitor.choices.items()}
    return ConsentRecord(
        id=ConsentRecord.new_id(),
        holder=Holder.subject("carol"),
        purposes=moved,
        policy_version="2026-03",
        method="account_link",
        recorded_at=T0 + dt.timedelta(hours=1),
        linked_from="v123",
    )


async def test_link_moves_visitor_choices_once_and_never_to_another_subject(database: Database) -> None:
    repo = ConsentRepository(database)
    await repo.append(record(Holder.visitor("v123"), {"analytics": True}, 0))

    moved = await repo.link("v123", "carol", _move_all, at=T0)
    assert moved is not None and moved.linked_from == "v123"
    assert (await repo.current(Holder.subject("carol"))).granted() == {"analytics"}
    assert await repo.linked_subject("v123") == "carol"
    assert await repo.visitors_of("carol") == ["v123"]

    assert await repo.link("v123", "carol", _move_all, at=T0) is None
    with pytest.raises(AlreadyLinked):
        await repo.link("v123", "mallory", _move_all, at=T0)
    assert await repo.history(Holder.subject("mallory")) == []
    assert len(await repo.history(Holder.subject("carol"))) == 1
