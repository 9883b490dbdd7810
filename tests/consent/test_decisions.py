import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.consent.decisions import Signals, decide, needs_choice
from privacy_middleware.policy.schema import Policy
from privacy_middleware.store.consent_records import Choice

POLICY_DOCUMENT = {
    "policy": {
        "name": "Decision shop",
        "version": "2026-03",
        "effective_date": "2026-03-01",
        "consent_compatible_versions": ["2026-01"],
    },
    "categories": {},
    "purposes": {
        "order_fulfilment": {"legal_basis": "contract"},
        "security": {"legal_basis": "legitimate_interest", "allowed_under_restriction": True},
        "analytics": {"legal_basis": "consent", "consent": "opt_in", "tcf_purposes": [7, 8, 9]},
        "marketing": {
            "legal_basis": "consent",
            "consent": "opt_in",
            "gpc_opt_out": True,
            "tcf_purposes": [1, 3, 4],
        },
        "personalisation": {"legal_basis": "legitimate_interest", "consent": "opt_out", "gpc_opt_out": True},
        "product_updates": {"legal_basis": "legitimate_interest", "consent": "notice"},
    },
}
AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
POLICY = Policy.model_validate(POLICY_DOCUMENT)
PURPOSES = sorted(POLICY.purposes)
CHOOSABLE = sorted(n for n, p in POLICY.purposes.items() if needs_choice(p))


def choice(granted: bool, version: str = "2026-03", method: str = "api") -> Choice:
    return Choice(granted, version, method, AT, "r1")  # type: ignore[arg-type]


def reasons(signals: Signals, policy: Policy = POLICY) -> dict[str, tuple[bool, str]]:
    return {n: (d.allowed, d.reason) for n, d in decide(policy, signals).purposes.items()}


def test_without_any_signal_the_mechanism_defaults_apply() -> None:
    assert reasons(Signals()) == {
        "order_fulfilment": (True, "not_consent_based"),
        "security": (True, "not_consent_based"),
        "analytics": (False, "default_opt_in"),
        "marketing": (False, "default_opt_in"),
        "personalisation": (True, "default_opt_out"),
        "product_updates": (True, "notice"),
    }


def test_explicit_choices_decide_consent_based_purposes() -> None:
    signals = Signals(choices={"analytics": choice(True), "personalisation": choice(False)})
    result = reasons(signals)
    assert result["analytics"] == (True, "explicit_granted")
    assert result["personalisation"] == (False, "explicit_denied")
    assert result["marketing"] == (False, "default_opt_in")


def test_gpc_wins_over_an_earlier_opt_in_only_for_gpc_purposes() -> None:
    signals = Signals(
        choices={"marketing": choice(True), "analytics": choice(True), "personalisation": choice(True)},
        gpc=True,
    )
    result = reasons(signals)
    assert result["marketing"] == (False, "gpc")
    assert result["personalisation"] == (False, "gpc")
    assert result["analytics"] == (True, "explicit_granted")


def test_grant_under_an_incompatible_policy_version_needs_reconsent() -> None:
    decision = decide(POLICY, Signals(choices={"analytics": choice(True, "2025-01")}))
    assert decision.purposes["analytics"].allowed is False
    assert decision.purposes["analytics"].reason == "default_opt_in"
    assert decision.reconsent_required
    compatible = decide(POLICY, Signals(choices={"analytics": choice(True, "2026-01")}))
    assert compatible.allowed("analytics") and not compatible.reconsent_required


def test_refusal_under_an_old_version_still_counts() -> None:
    decision = decide(POLICY, Signals(choices={"personalisation": choice(False, "2019-01")}))
    assert decision.purposes["personalisation"].reason == "explicit_denied"
    assert not decision.reconsent_required


def test_tcf_decides_when_there_is_no_first_party_choice() -> None:
    result = reasons(Signals(tcf_purposes=frozenset({7, 8, 9, 1})))
    assert result["analytics"] == (True, "tcf_granted")
    assert result["marketing"] == (False, "tcf_denied")
    first_party = reasons(Signals(choices={"analytics": choice(False)}, tcf_purposes=frozenset({7, 8, 9})))
    assert first_party["analytics"] == (False, "explicit_denied")


def test_invalid_tc_string_denies_tcf_mapped_purposes() -> None:
    result = reasons(Signals(tcf_invalid=True))
    assert result["analytics"] == (False, "tcf_invalid")
    assert result["marketing"] == (False, "tcf_invalid")
    assert result["personalisation"] == (True, "default_opt_out")


def test_restriction_keeps_only_purposes_allowed_under_restriction() -> None:
    result = reasons(Signals(restricted=True, choices={"analytics": choice(True)}))
    assert result["security"] == (True, "not_consent_based")
    for name in ("order_fulfilment", "analytics", "marketing", "personalisation", "product_updates"):
        assert result[name] == (False, "restricted")


def test_objection_stops_legitimate_interest_but_not_contract() -> None:
    result = reasons(Signals(objected=frozenset({"security", "order_fulfilment", "personalisation"})))
    assert result["security"] == (False, "objected")
    assert result["personalisation"] == (False, "objected")
    assert result["order_fulfilment"] == (True, "not_consent_based")


def test_store_unavailable_fails_closed_for_consent_based_purposes_only() -> None:
    result = reasons(Signals(store_unavailable=True))
    assert result["order_fulfilment"] == (True, "not_consent_based")
    assert result["security"] == (True, "not_consent_based")
    for name in CHOOSABLE:
        assert result[name] == (False, "store_unavailable")


def test_consent_legal_basis_without_mechanism_is_opt_in() -> None:
    document = {**POLICY_DOCUMENT, "purposes": {"ads": {"legal_basis": "consent"}}}
    policy = Policy.model_validate(document)
    assert reasons(Signals(), policy) == {"ads": (False, "default_opt_in")}


def test_unknown_purposes_are_never_allowed() -> None:
    decision = decide(POLICY, Signals())
    assert not decision.allowed("no_such_purpose")
    assert decision.reason("no_such_purpose") == "unknown_purpose"


choices_st = st.dictionaries(
    st.sampled_from(PURPOSES),
    st.builds(choice, st.booleans(), st.sampled_from(["2026-03", "2026-01", "2024-01"])),
)
signals_st = st.builds(
    Signals,
    choices=choices_st,
    gpc=st.booleans(),
    tcf_purposes=st.none() | st.frozensets(st.integers(1, 11)),
    tcf_invalid=st.booleans(),
    objected=st.frozensets(st.sampled_from(PURPOSES)),
    restricted=st.booleans(),
    store_unavailable=st.booleans(),
)


@given(signals_st)
def test_gpc_never_allows_a_gpc_opt_out_purpose(signals: Signals) -> None:
    decision = decide(POLICY, Signals(**{**_fields(signals), "gpc": True}))
    for name, purpose in POLICY.purposes.items():
        if purpose.gpc_opt_out:
            assert not decision.allowed(name)


@given(signals_st)
def test_withdrawal_always_denies_every_consent_based_purpose(signals: Signals) -> None:
    withdrawn = {name: choice(False, method="withdrawal") for name in CHOOSABLE}
    decision = decide(POLICY, Signals(**{**_fields(signals), "choices": withdrawn}))
    for name in CHOOSABLE:
        assert not decision.allowed(name)


@given(signals_st)
def test_every_purpose_gets_exactly_one_decision_with_a_reason(signals: Signals) -> None:
    decision = decide(POLICY, signals)
    assert set(decision.purposes) == set(POLICY.purposes)
    assert decision.granted | decision.denied == set(POLICY.purposes)
    assert not decision.granted & decision.denied
    for d in decision.purposes.values():
        assert d.reason
        if d.reason == "not_consent_based":
            assert not needs_choice(POLICY.purposes[d.purpose])


@given(signals_st)
def test_restriction_allows_only_purposes_marked_for_it(signals: Signals) -> None:
    decision = decide(POLICY, Signals(**{**_fields(signals), "restricted": True}))
    for name in decision.granted:
        assert POLICY.purposes[name].allowed_under_restriction


@given(signals_st)
def test_stale_grants_never_allow_an_opt_in_purpose(signals: Signals) -> None:
    stale = {n: choice(True, "2020-01") for n in CHOOSABLE}
    decision = decide(POLICY, Signals(**{**_fields(signals), "choices": stale, "tcf_purposes": None}))
    for name, purpose in POLICY.purposes.items():
        if purpose.consent == "opt_in":
            assert not decision.allowed(name)


def _fields(signals: Signals) -> dict[str, object]:
    return {name: getattr(signals, name) for name in Signals.__slots__}  # type: ignore[attr-defined]


@pytest.mark.parametrize("gpc", [True, False])
def test_notice_purposes_are_allowed_without_a_choice(gpc: bool) -> None:
    assert decide(POLICY, Signals(gpc=gpc)).purposes["product_updates"].reason == "notice"
