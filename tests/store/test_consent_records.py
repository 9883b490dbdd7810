import datetime as dt

import pytest

from privacy_middleware.netaddr import network_hint
from privacy_middleware.store.consent_records import (
    ConsentRecord,
    Holder,
    InvalidHolder,
    derive_state,
    user_agent_family,
)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("10.1.2.255", "10.1.2.0/24"),
        ("2001:db8:abcd:12:34::1", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        (" 192.0.2.1 ", "192.0.2.0/24"),
        ("not-an-ip", None),
        ("", None),
        (None, None),
        ("203.0.113.77/8", None),
    ],
)
def test_ip_is_truncated_to_its_network(ip: str | None, expected: str | None) -> None:
    assert network_hint(ip) == expected


@pytest.mark.parametrize(
    ("ua", "family"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0", "firefox"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36",
            "chrome",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87",
            "edge",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.5 Safari/605.1.15",
            "safari",
        ),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("curl/8.5.0", "curl"),
        ("SomethingElse/1.0", "other"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_user_agent_is_reduced_to_its_family(ua: str | None, family: str) -> None:
    assert user_agent_family(ua) == family


def test_holder_keys_round_trip_and_reject_odd_ids() -> None:
    for holder in (Holder.subject("cust_42"), Holder.visitor("vAbC-_1"), Holder.subject("auth0|José")):
        assert Holder.from_key(holder.key) == holder
    for bad in ("", "has space", "x" * 129, "tab\t", "nul\x00", "line\n"):
        with pytest.raises(InvalidHolder) as info:
            Holder.subject(bad)
        assert info.value.code == "invalid_holder" and info.value.status == 400
        assert bad not in info.value.message or not bad
    with pytest.raises(InvalidHolder):
        Holder.from_key("x:abc")


def _record(purposes: dict[str, bool], minute: int, method: str = "api") -> ConsentRecord:
    return ConsentRecord(
        id=f"r{minute}",
        holder=Holder.subject("s1"),
        purposes=purposes,
        policy_version="v1",
        method=method,  # type: ignore[arg-type]
        recorded_at=dt.datetime(2026, 1, 1, 12, minute, tzinfo=dt.UTC),
    )


def test_state_is_the_newest_choice_per_purpose() -> None:
    history = [
        _record({"analytics": True, "marketing": True}, 1),
        _record({"marketing": False}, 2, "withdrawal"),
        _record({"analytics": True}, 3),
    ]
    state = derive_state(Holder.subject("s1"), history)
    assert state.granted() == {"analytics"}
    assert state.denied() == {"marketing"}
    assert state.choices["marketing"].method == "withdrawal"
    assert state.choices["analytics"].record_id == "r3"
    assert state.last_record_id == "r3"


def test_empty_history_has_no_choices() -> None:
    state = derive_state(None, [])
    assert state.choices == {}
    assert state.last_record_id is None
