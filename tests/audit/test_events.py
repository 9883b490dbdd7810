import ipaddress
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.audit import (
    account_change,
    admin_read,
    consent_change,
    data_access,
    detection_finding,
    key_operation,
    lifecycle,
    login_attempt,
    logout,
    network_hint,
    subject_request,
)
from privacy_middleware.audit.events import parse_time, to_micros


def test_login_attempt_is_ocsf_authentication_logon_with_personal_values_set_aside() -> None:
    event = login_attempt(
        success=False,
        username="alice@example.org",
        ip="203.0.113.77",
        user_agent="Mozilla/5.0",
        reason="INVALID_CREDENTIALS",
        route="POST /account/login",
    )
    doc = event.document()
    assert (doc["class_uid"], doc["category_uid"], doc["activity_id"], doc["type_uid"]) == (
        3002,
        3,
        1,
        300201,
    )
    assert doc["status"] == "failure"
    assert doc["detail"]["network"] == "203.0.113.0/24"
    assert doc["detail"]["status_detail"] == "INVALID_CREDENTIALS"
    text = orjson.dumps(doc)
    assert b"alice" not in text and b"203.0.113.77" not in text and b"Mozilla" not in text
    assert event.personal == {
        "ip": "203.0.113.77",
        "username": "alice@example.org",
        "user_agent": "Mozilla/5.0",
    }
    assert "alice" not in repr(event) and "203.0.113.77" not in repr(event)


def test_every_builder_maps_to_its_ocsf_class() -> None:
    events = [
        (logout(subject="c1"), 3002, 2),
        (account_change("password_change", subject="c1"), 3001, 3),
        (account_change("account_closure", subject="c1"), 3001, 6),
        (account_change("email_change", subject="c1"), 3001, 99),
        (
            data_access(principal="s1", subject="c1", categories=["user.contact.email"], purpose="support"),
            6003,
            2,
        ),
        (consent_change(subject="c1", purposes_granted=["analytics"]), 6003, 3),
        (subject_request(subject="c1", request="erasure", state="completed", request_id="r-1"), 6003, 99),
        (key_operation(operation="shred", key_id="subj:c1", principal="system"), 6003, 99),
        (admin_read(principal="admin_1", query={"subject": "c1"}, result_count=3), 6003, 2),
        (detection_finding("tampering_detected", title="root mismatch"), 2004, 1),
        (lifecycle("heartbeat"), 0, 99),
    ]
    for event, class_uid, activity in events:
        assert (event.class_uid, event.activity_id) == (class_uid, activity), event.kind
        assert event.type_uid == class_uid * 100 + activity


def test_data_access_records_names_and_purpose_never_values() -> None:
    event = data_access(
        principal="svc_logistics",
        subject="cust_42",
        recipient="logistics",
        purpose="delivery",
        categories=["user.contact.address.delivery", "user.contact.phone"],
        fields=["$.shipping.address", "$.shipping.phone"],
        route="GET /orders/{id}",
        action="disclose",
    )
    detail = event.document()["detail"]
    assert event.kind == "api_activity.data_disclose"
    assert detail["recipient"] == "logistics" and detail["purpose"] == "delivery"
    assert detail["categories"] == ["user.contact.address.delivery", "user.contact.phone"]


@pytest.mark.parametrize(
    "bad",
    [
        {"categories": ["4111 1111 1111 1111"]},
        {"categories": "user.financial.card"},
        {"categories": []},
        {"fields": ["alice@example.org street 5"]},
        {"purpose": "Delivery to Main Street 5"},
        {"route": "GET /orders?id=5&email=a@b.c"},
        {"record_count": -1},
        {"action": "steal"},
    ],
)
def test_data_access_rejects_anything_that_looks_like_a_value(bad: dict[str, object]) -> None:
    args: dict[str, object] = {
        "principal": "s1",
        "subject": "c1",
        "categories": ["user.financial.card"],
        "purpose": "payment",
    }
    args.update(bad)
    with pytest.raises(ValueError):
        data_access(**args)  # type: ignore[arg-type]


def test_details_must_be_float_free_json_and_times_timezone_aware() -> None:
    with pytest.raises(ValueError):
        lifecycle("heartbeat", ratio=0.5)
    with pytest.raises(ValueError):
        lifecycle("heartbeat", blob=b"raw")
    with pytest.raises(ValueError):
        logout(subject="c1", time=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        logout(subject="line\nbreak")
    with pytest.raises(ValueError):
        login_attempt(success=False, reason="wrong password for alice")


def test_event_time_is_utc_with_microseconds_and_uids_are_time_ordered() -> None:
    when = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    event = logout(subject="c1", time=when)
    assert event.document()["time"] == "2026-03-01T10:00:00.123456Z"
    assert parse_time(event.document()["time"]) == when
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1_000_000
    before_ms = time.time_ns() // 1_000_000
    uids = [logout(subject="c1").uid for _ in range(50)]
    after_ms = time.time_ns() // 1_000_000
    for text in uids:  # UUIDv7 (RFC 9562): the millisecond first, then the version and the variant
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 7, uuid.RFC_4122)
        assert before_ms <= parsed.int >> 80 <= after_ms
    assert uids == sorted(uids, key=lambda text: uuid.UUID(text).int >> 80)
    # the leaf spells every time as isoformat does: zero microseconds and early years included
    for value in (
        datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
    ):
        document = logout(subject="c1", time=value).document()
        assert document["time"] == value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        assert parse_time(document["time"]) == value
    assert len(set(uids)) == 50


@given(st.ip_addresses(v=4))
def test_ipv4_hint_is_the_slash_24(address: ipaddress.IPv4Address) -> None:
    hint = network_hint(str(address))
    assert hint is not None
    network = ipaddress.ip_network(hint)
    assert network.prefixlen == 24 and address in network


@given(st.ip_addresses(v=6))
def test_ipv6_hint_is_the_slash_48_or_the_mapped_ipv4_network(address: ipaddress.IPv6Address) -> None:
    hint = network_hint(str(address))
    assert hint is not None
    network = ipaddress.ip_network(hint)
    if address.ipv4_mapped is not None:
        assert network.prefixlen == 24 and address.ipv4_mapped in network
    else:
        assert network.prefixlen == 48 and address in network


@pytest.mark.parametrize("value", ["", "unknown", "_hidden", "300.1.2.3", "unix:", None])
def test_network_hint_of_a_non_address_is_none(value: str | None) -> None:
    assert network_hint(value) is None


def test_bracketed_ipv6_is_understood() -> None:
    assert network_hint("[2001:db8:1:2::5]") == "2001:db8:1::/48"
