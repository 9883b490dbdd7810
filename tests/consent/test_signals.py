import datetime as dt
import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.consent.consent_mode import consent_mode, consent_mode_header
from privacy_middleware.consent.cookie_filter import expiring_set_cookies, filter_set_cookies
from privacy_middleware.consent.decisions import Signals, decide
from privacy_middleware.consent.signals import gpc_enabled, parse_cookie_header, request_signals
from privacy_middleware.policy.schema import Policy
from privacy_middleware.store.consent_records import Choice

AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
_FILTER_POLICY = Policy.model_validate(
    {
        "policy": {"name": "p", "version": "2026-03", "effective_date": "2026-01-01"},
        "categories": {},
        "purposes": {
            "analytics": {"legal_basis": "consent", "consent": "opt_in"},
            "marketing": {"legal_basis": "consent", "consent": "opt_in"},
            "personalisation": {"legal_basis": "legitimate_interest", "consent": "opt_in"},
        },
        "tracking": {
            "cookies": [
                {"pattern": "_ga*", "purpose": "analytics"},
                {"pattern": "_gac", "purpose": "marketing"},
                {"pattern": "_gcl_*", "purpose": "marketing"},
                {"pattern": "_fbp", "purpose": "marketing"},
                {"pattern": "*fbp", "purpose": "personalisation"},
            ]
        },
    }
)


def granted(*names: str) -> dict[str, Choice]:
    return {n: Choice(True, "2026-03", "api", AT, "r") for n in names}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"sec-gpc", b"1")], True),
        ([(b"Sec-GPC", b"1")], True),
        ([(b"sec-gpc", b"0"), (b"sec-gpc", b"1")], True),
        ([(b"sec-gpc", b" 1")], False),
        ([(b"sec-gpc", b"1 ")], False),
        ([(b"sec-gpc", b"true")], False),
        ([(b"sec-gpc", b"1, 1")], False),
        ([(b"sec-gpc", b"")], False),
        ([(b"sec-gpc", b"0")], False),
        ([(b"x-sec-gpc", b"1")], False),
        ([], False),
    ],
)
def test_gpc_counts_only_an_exact_one(headers: list[tuple[bytes, bytes]], expected: bool) -> None:
    assert gpc_enabled(headers) is expected


def test_cookie_header_parsing_survives_odd_cookies() -> None:
    cookies = parse_cookie_header('a=1; broken; =x; b="quoted"; a=2; c=x=y; _ga=GA1.2.3')
    assert cookies == {"a": "1", "b": "quoted", "c": "x=y", "_ga": "GA1.2.3"}


def test_request_signals_read_cookie_tc_string_and_query() -> None:
    headers = [(b"cookie", b"pm_consent=c1.a.b; euconsent-v2=COOKIE"), (b"sec-gpc", b"1")]
    signals = request_signals(headers, b"gdpr_consent=QUERY&x=1")
    assert signals.gpc and signals.consent_cookie == "c1.a.b" and signals.tc_string == "QUERY"
    assert request_signals(headers).tc_string == "COOKIE"
    assert request_signals([]).tc_string is None


def test_consent_mode_follows_the_decision(policy: Policy) -> None:
    none = consent_mode(policy, decide(policy, Signals()))
    assert none == {
        "ad_storage": "denied",
        "analytics_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
    }
    both = consent_mode(policy, decide(policy, Signals(choices=granted("analytics", "marketing"))))
    assert set(both.values()) == {"granted"}
    gpc = consent_mode(policy, decide(policy, Signals(choices=granted("analytics", "marketing"), gpc=True)))
    assert gpc["analytics_storage"] == "granted" and gpc["ad_storage"] == "denied"
    assert consent_mode_header(gpc).startswith("ad_storage=denied, analytics_storage=granted")


def test_a_consent_type_is_denied_if_any_mapped_purpose_is_denied() -> None:
    policy = Policy.model_validate(
        {
            "policy": {"name": "p", "version": "2026-03", "effective_date": "2026-01-01"},
            "categories": {},
            "purposes": {
                "ads": {"legal_basis": "consent", "consent": "opt_in", "google_consent": ["ad_storage"]},
                "retargeting": {
                    "legal_basis": "consent",
                    "consent": "opt_in",
                    "google_consent": ["ad_storage"],
                },
            },
        }
    )
    assert consent_mode(policy, decide(policy, Signals(choices=granted("ads"))))["ad_storage"] == "denied"
    assert consent_mode(policy, decide(policy, Signals(choices=granted("ads", "retargeting"))))["ad_storage"] == (
        "granted"
    )


SET_COOKIES = [
    "session=abc; Path=/; HttpOnly",
    "_ga=GA1.2.3; Domain=.shop.example; Max-Age=63072000",
    "_gcl_au=1.1; Path=/",
    b"_fbp=fb.1; Path=/",
    "cart=42",
]


def test_set_cookie_filter_drops_denied_tracking_cookies_and_keeps_the_rest(policy: Policy) -> None:
    rules = policy.tracking.cookies
    nothing = decide(policy, Signals())
    assert filter_set_cookies(SET_COOKIES, rules, nothing) == ["session=abc; Path=/; HttpOnly", "cart=42"]
    analytics = decide(policy, Signals(choices=granted("analytics")))
    assert filter_set_cookies(SET_COOKIES, rules, analytics) == [
        "session=abc; Path=/; HttpOnly",
        "_ga=GA1.2.3; Domain=.shop.example; Max-Age=63072000",
        "cart=42",
    ]
    everything = decide(policy, Signals(choices=granted("analytics", "marketing")))
    assert filter_set_cookies(SET_COOKIES, rules, everything) == SET_COOKIES


def test_withdrawal_expires_tracking_cookies_the_browser_already_has(policy: Policy) -> None:
    denied = decide(policy, Signals())
    headers = expiring_set_cookies(
        "session=abc; _ga=GA1; _ga_XYZ=GS1; _fbp=fb; cart=1",
        policy.tracking.cookies,
        denied,
        domains=[".shop.example"],
    )
    names = [h.split("=", 1)[0] for h in headers]
    assert names == ["_ga", "_ga", "_ga_XYZ", "_ga_XYZ", "_fbp", "_fbp"]
    assert all("Max-Age=0" in h and "Expires=Thu, 01 Jan 1970" in h for h in headers)
    assert sum("Domain=.shop.example" in h for h in headers) == 3
    assert expiring_set_cookies(None, policy.tracking.cookies, denied) == []
    allowed = decide(policy, Signals(choices=granted("analytics", "marketing")))
    assert expiring_set_cookies("_ga=1; _fbp=2", policy.tracking.cookies, allowed) == []


cookie_names = st.sampled_from(["_ga", "_ga_X1", "_gcl_au", "_fbp", "session", "cart", "_gac", "fbp", "csrftoken"])


@given(
    names=st.lists(cookie_names, max_size=8),
    granted_purposes=st.frozensets(st.sampled_from(["analytics", "marketing", "personalisation"])),
)
def test_set_cookie_filter_never_lets_a_denied_tracking_cookie_through(
    names: list[str], granted_purposes: frozenset[str]
) -> None:
    policy = _FILTER_POLICY
    decision = decide(policy, Signals(choices=granted(*granted_purposes)))
    values = [f"{name}=v; Path=/" for name in names]
    kept = filter_set_cookies(values, policy.tracking.cookies, decision)
    for value in values:
        name = value.split("=", 1)[0]
        purposes = [r.purpose for r in policy.tracking.cookies if fnmatch.fnmatchcase(name, r.pattern)]
        should_keep = all(p in granted_purposes for p in purposes)
        assert (value in kept) == should_keep
    expired = expiring_set_cookies("; ".join(values), policy.tracking.cookies, decision)
    assert {h.split("=", 1)[0] for h in expired} == {v.split("=", 1)[0] for v in values if v not in kept}
