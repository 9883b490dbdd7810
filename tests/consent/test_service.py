from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from privacy_middleware.consent import ConsentService, Holder, verify_receipt
from privacy_middleware.errors import PrivacyError
from privacy_middleware.policy.schema import Policy
from privacy_middleware.store import Database
from privacy_middleware.store.bus import LocalBus

pytestmark = pytest.mark.anyio

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


async def test_set_purposes_records_signs_and_issues_a_cookie(service: ConsentService) -> None:
    alice = Holder.subject("alice")
    change = await service.set_purposes(
        alice,
        {"analytics": True, "marketing": False},
        method="banner",
        client_ip="203.0.113.9",
        user_agent=FIREFOX,
    )
    assert change.record.ip_prefix == "203.0.113.0/24"
    assert change.record.ua_family == "firefox"
    assert change.record.policy_version == "2026-03"
    claims = verify_receipt(change.receipt, service.receipts.public_key)
    assert claims["record_id"] == change.record.id
    assert change.state.granted() == {"analytics"}
    cookie = service.verify_cookie(change.cookie)
    assert cookie is not None and cookie.holder == alice and cookie.granted == {"analytics"}
    assert change.set_cookie.startswith("pm_consent=")

    history = await service.history(alice)
    assert [r.id for r in history] == [change.record.id]
    assert history[0].receipt == change.receipt

    decision = await service.decide(subject="alice")
    assert decision.allowed("analytics") and not decision.allowed("marketing")
    assert decision.reason("marketing") == "explicit_denied"


@pytest.mark.parametrize(
    ("purposes", "code"),
    [
        ({"analytics": True, "telepathy": True}, "unknown_purpose"),
        ({"order_fulfilment": False}, "purpose_not_consent_based"),
        ({"analytics": "yes"}, "invalid_choice"),
        ({"analytics": 1}, "invalid_choice"),
        ({}, "no_purposes"),
    ],
)
async def test_invalid_choices_are_refused_with_the_valid_purposes(
    service: ConsentService, purposes: dict[str, object], code: str
) -> None:
    with pytest.raises(PrivacyError) as info:
        await service.set_purposes(Holder.subject("alice"), purposes)
    assert info.value.code == code and info.value.status == 422
    if code in ("unknown_purpose", "purpose_not_consent_based"):
        assert info.value.extra["valid_purposes"] == [
            "analytics",
            "marketing",
            "personalisation",
            "product_updates",
        ]
    assert await service.history(Holder.subject("alice")) == []


async def test_withdrawal_denies_every_consent_based_purpose(service: ConsentService) -> None:
    bob = Holder.subject("bob")
    await service.set_purposes(bob, {"analytics": True, "marketing": True})
    assert (await service.decide(subject="bob")).allowed("marketing")
    change = await service.withdraw(bob)
    assert change.record.method == "withdrawal"
    decision = await service.decide(subject="bob")
    assert decision.granted == {"order_fulfilment", "security"}
    cookie = service.verify_cookie(change.cookie)
    assert cookie is not None and cookie.granted == frozenset()


async def test_a_visitor_decides_from_the_cookie_without_the_store(database: Database, make_service: object) -> None:
    service: ConsentService = make_service(database)  # type: ignore[operator]
    change = await service.set_purposes(Holder.visitor("vXYZ"), {"analytics": True})
    await database.dispose()
    broken: ConsentService = make_service(Database("postgresql://nobody@127.0.0.1:1/none"))  # type: ignore[operator]
    resolution = await broken.resolve(consent_cookie=change.cookie)
    assert resolution.source == "cookie"
    assert resolution.decision.allowed("analytics")


async def test_unreachable_store_fails_closed_for_consent_based_purposes(make_service: object) -> None:
    database = Database("postgresql://nobody@127.0.0.1:1/none")
    service: ConsentService = make_service(database, store_timeout=2.0)  # type: ignore[operator]
    try:
        resolution = await service.resolve(subject="alice", gpc=False)
        assert resolution.source == "store_unavailable"
        assert resolution.decision.granted == {"order_fulfilment", "security"}
        assert resolution.decision.reason("personalisation") == "store_unavailable"
        with pytest.raises(PrivacyError) as info:
            await service.set_purposes(Holder.subject("alice"), {"analytics": True})
        assert info.value.code == "store_unavailable" and info.value.status == 503
        assert "nobody" not in info.value.message
    finally:
        await database.dispose()


async def test_forged_cookie_is_no_consent_and_is_counted(database: Database, make_service: object) -> None:
    registry = CollectorRegistry()
    service: ConsentService = make_service(database, registry=registry)  # type: ignore[operator]
    change = await service.set_purposes(Holder.visitor("vA"), {"analytics": True})
    body, _, signature = change.cookie.rpartition(".")
    forged = body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    decision = await service.decide(consent_cookie=forged)
    assert decision.reason("analytics") == "default_opt_in"
    assert registry.get_sample_value("privacy_consent_cookie_rejected_total", {"reason": "forged"}) == 1


async def test_gpc_is_persisted_so_its_absence_later_is_no_opt_in(service: ConsentService) -> None:
    carol = Holder.subject("carol")
    await service.set_purposes(carol, {"marketing": True})
    with_gpc = await service.decide(subject="carol", gpc=True)
    assert with_gpc.reason("marketing") == "gpc" and with_gpc.reason("personalisation") == "gpc"
    change = await service.apply_gpc(carol)
    assert change is not None and change.record.method == "gpc"
    assert change.record.purposes == {"marketing": False, "personalisation": False}
    assert await service.apply_gpc(carol) is None
    later = await service.decide(subject="carol", gpc=False)
    assert not later.allowed("marketing") and not later.allowed("personalisation")
    assert later.allowed("product_updates")


async def test_cache_is_dropped_across_instances_through_the_bus(database: Database, make_service: object) -> None:
    bus = LocalBus()
    one: ConsentService = make_service(database, bus=bus, cache_ttl=3600)  # type: ignore[operator]
    two: ConsentService = make_service(database, bus=bus, cache_ttl=3600)  # type: ignore[operator]
    dave = Holder.subject("dave")
    await one.set_purposes(dave, {"analytics": True})
    assert (await two.decide(subject="dave")).allowed("analytics")  # now cached on two
    await one.withdraw(dave)
    assert not (await two.decide(subject="dave")).allowed("analytics")


async def test_without_a_bus_other_instances_are_stale_until_the_ttl(database: Database, make_service: object) -> None:
    one: ConsentService = make_service(database, cache_ttl=3600)  # type: ignore[operator]
    two: ConsentService = make_service(database, cache_ttl=3600)  # type: ignore[operator]
    await one.set_purposes(Holder.subject("erin"), {"analytics": True})
    assert (await two.decide(subject="erin")).allowed("analytics")
    await one.withdraw(Holder.subject("erin"))
    assert (await two.decide(subject="erin")).allowed("analytics")
    two.invalidate(Holder.subject("erin"))
    assert not (await two.decide(subject="erin")).allowed("analytics")


async def test_login_moves_newer_visitor_choices_to_the_account(service: ConsentService) -> None:
    frank = Holder.subject("frank")
    await service.set_purposes(frank, {"analytics": False, "personalisation": True})
    await service.set_purposes(Holder.visitor("vFrank"), {"analytics": True, "marketing": True})
    change = await service.link_visitor("vFrank", "frank")
    assert change is not None
    assert change.record.method == "account_link" and change.record.linked_from == "vFrank"
    assert change.record.purposes == {"analytics": True, "marketing": True}
    decision = await service.decide(subject="frank")
    assert decision.granted >= {"analytics", "marketing", "personalisation"}
    assert await service.link_visitor("vFrank", "frank") is None
    with pytest.raises(PrivacyError) as info:
        await service.link_visitor("vFrank", "grace")
    assert info.value.status == 409
    history = await service.history(frank)
    assert [r.method for r in history] == ["api", "api", "account_link"]
    assert {r.holder.kind for r in history} == {"subject", "visitor"}


async def test_grants_under_an_old_policy_need_reconsent(
    database: Database, make_service: object, policy_factory: Callable[..., Policy]
) -> None:
    old: ConsentService = make_service(database, policy=policy_factory(version="2025-06"))  # type: ignore[operator]
    await old.set_purposes(Holder.subject("hana"), {"analytics": True, "personalisation": False})
    new: ConsentService = make_service(database)  # type: ignore[operator]
    resolution = await new.resolve(subject="hana")
    assert resolution.decision.reconsent_required
    assert resolution.decision.reason("analytics") == "default_opt_in"
    assert resolution.decision.reason("personalisation") == "explicit_denied"


async def test_tc_strings_feed_the_decision_and_invalid_ones_fail_closed(service: ConsentService) -> None:
    valid = await service.resolve(tc_string=_v22_string(purposes={7, 8, 9}))
    assert valid.tcf == "valid" and valid.decision.reason("analytics") == "tcf_granted"
    assert valid.decision.reason("marketing") == "tcf_denied"
    invalid = await service.resolve(tc_string="COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA")  # policy version 2
    assert invalid.tcf == "invalid" and invalid.decision.reason("analytics") == "tcf_invalid"
    again = await service.resolve(tc_string="COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA")
    assert again.tcf == "invalid"


def _v22_string(purposes: set[int]) -> str:
    import base64

    def uint(v: int, w: int) -> str:
        return format(v, f"0{w}b")

    ds = 17_800_000_000  # 2026-05-28
    bits = (
        uint(2, 6)
        + uint(ds, 36) * 2
        + uint(300, 12)
        + uint(1, 12)
        + uint(1, 6)
        + uint(3, 6)
        + uint(4, 6)
        + uint(140, 12)
        + uint(4, 6)
        + "1"
        + "0"
        + "0" * 12
        + "".join("1" if i + 1 in purposes else "0" for i in range(24))
        + "0" * 24
        + "0"
        + uint(3, 6)
        + uint(4, 6)
        + uint(0, 16)
        + "0"
        + uint(0, 16)
        + "0"
        + uint(0, 12)
    )
    disclosed = uint(1, 3) + uint(2, 16) + "0" + "11"

    def b64(b: str) -> str:
        b += "0" * (-len(b) % 8)
        return base64.urlsafe_b64encode(int(b, 2).to_bytes(len(b) // 8, "big")).rstrip(b"=").decode()

    return b64(bits) + "." + b64(disclosed)


async def test_a_cookie_verified_once_still_expires(database: Database, make_service: object) -> None:
    now = [1_800_000_000.0]
    registry = CollectorRegistry()
    service: ConsentService = make_service(  # type: ignore[operator]
        database, clock=lambda: now[0], cookie_max_age=60, registry=registry
    )
    change = await service.set_purposes(Holder.visitor("vExp"), {"analytics": True})
    assert (await service.decide(consent_cookie=change.cookie)).allowed("analytics")
    now[0] += 61
    assert not (await service.decide(consent_cookie=change.cookie)).allowed("analytics")
    assert registry.get_sample_value("privacy_consent_cookie_rejected_total", {"reason": "expired"}) == 1


async def test_a_subject_without_choices_keeps_the_browser_visitor_choices(service: ConsentService) -> None:
    visitor = await service.set_purposes(Holder.visitor("vNew"), {"analytics": True})
    before_link = await service.resolve(subject="kim", consent_cookie=visitor.cookie)
    assert before_link.source == "cookie" and before_link.decision.allowed("analytics")
    await service.set_purposes(Holder.subject("kim"), {"analytics": False})
    after = await service.resolve(subject="kim", consent_cookie=visitor.cookie)
    assert after.source == "store" and not after.decision.allowed("analytics")


async def test_unusable_subject_ids_are_a_clear_error(service: ConsentService) -> None:
    with pytest.raises(PrivacyError) as info:
        await service.resolve(subject="x" * 500)
    assert info.value.code == "invalid_holder"


async def test_restriction_and_objection_flags_reach_the_decision(service: ConsentService) -> None:
    await service.set_purposes(Holder.subject("lee"), {"analytics": True, "personalisation": True})
    restricted = await service.decide(subject="lee", restricted=True)
    assert restricted.granted == {"security"}
    objected = await service.decide(subject="lee", objected=frozenset({"personalisation", "security"}))
    assert objected.reason("personalisation") == "objected" and objected.reason("security") == "objected"
    assert objected.allowed("analytics") and objected.allowed("order_fulfilment")
