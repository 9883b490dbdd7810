"""TC strings and expected values from the IAB reference decoders' test suites (iabtcf-java
TCStringV2Test, iabtcf-es ReportedIssues), plus strings built here with a small test encoder."""

import base64
import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.consent.tcf import (
    IdSet,
    TCFError,
    TCFRules,
    consented_purposes,
    decode_tc_string,
    map_to_policy,
    parse_tc_string,
    validate_tc_string,
    vendor_consented,
)
from privacy_middleware.policy.schema import Policy

UTC = dt.UTC
JAVA_BASIC = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA"
JAVA_BITFIELDS = "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA"
JAVA_SEGMENTS = JAVA_BITFIELDS + ".IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA"
JAVA_TWO_RANGES = (
    "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAg"
    "EAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw"
)
ES_ISSUE_201 = (
    "CO4VGswO4VGswAfZCBDEAzCsAP_AAH_AAAigGUNf_X9fb2vj-_599_t0eY1f9_63t-wzjheMs-8NyZ-X_J4Wv2MyvB34JqQKGRgk"
    "unLBAQdtHGncTQgBwIlViTLMY02MjzNKJrJEilsbe2dYGH9vn8XT_ZKZ70-_v__7v3___33_5Ayhr_6_r7e18f3_Pvv9ujzGr_v_W9v"
    "2GccLxln3huTPy_5PC1-xmV4O_BNSBQyMEl05YICDto407iaEAOBEqsSZZjGmxkeZpRNZIkUtjb2zrAw_t8_i6f7JTPen39___d-"
    "___--__ICgKAOAAcAA4AFAAjgB6AEYALcGACAW0AtoJAHAAOAAcACgARwA9ACMAFuFABALaAW0GgDgAHAAOABQAI4AegBGAC3D"
    "gAgFtALaEQBwADgAHAAoAEcAPQAjABbiQAQC2gFtCoA4ABwADgAUACOAHoARgAtxYAIBbQC2hkAcAA4ABwAKABHAD0AIwAW40AEAt"
    "oBbQ6AOAAcAA4AFAAjgB6AEYALceACAW0AtohAHAAOAAcACgARwA9ACMAFuRABALaAW0SgDgAHAAOABQAI4AegBGAC3JgAgFtALaK"
    "QBwADgAHAAoAEcAPQAjABblQAQC2gFtA"
)
ES_ISSUE_142 = (
    "CLSYjTaOngnCIAOABBENAXCMAGOAABBAAA7IA5n-m7fP6_3fbqVv6E__PoA5Aqff3aJx8tv_1967rfnQEQoAIAAQCrwkAEABAcACAB"
    "IMACAAuApEVABABUSABgBCAVSAtIoACACIArYQAHACgAFgAVwBJgDcAI7AWgMAAgBiKgAgBMgFfKQAQBRkQAQA4AFiBAAoA-AEVAJl"
    "AVgAtYcACAJcAr4eABAK8OgBgFzAOmAqwgABAWyA.IFukWSQh"
)
# -- a tiny encoder, only for building v2.2/v2.3 strings in tests -------------------------------


def bits_to_b64(bits: str) -> str:
    bits += "0" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(value: int, width: int) -> str:
    return format(value, f"0{width}b")


def flags(ids: set[int] | frozenset[int], width: int) -> str:
    return "".join("1" if i + 1 in ids else "0" for i in range(width))


def letters(text: str) -> str:
    return "".join(uint(ord(c) - ord("A"), 6) for c in text)


def vendor_bits(ids: list[int], ranged: bool) -> str:
    max_id = max(ids, default=0)
    if not ranged:
        return uint(max_id, 16) + "0" + flags(set(ids), max_id)
    return uint(max_id, 16) + "1" + uint(len(ids), 12) + "".join("0" + uint(i, 16) for i in ids)


ES_ISSUE_156_V1 = (
    "BOhwdphOxFC7tAHABBFRC--AAAAuhr_7__7-_9_-_f__9uj3Or_v_f__32ccL59v_h_7v-_7fi_20nV4u_1vft9yfk1-5ctDztp507i"
    "akivXmqdeb9v_nz3_5pxP78k89r7337Ew_v8_v-b7BCON_YxEiA"
)


def test_java_basic_string_decodes_every_core_field() -> None:
    tc = decode_tc_string(JAVA_BASIC)
    assert tc.version == 2
    assert tc.created == dt.datetime(2020, 1, 26, 17, 1, tzinfo=UTC)
    assert tc.last_updated == dt.datetime(2021, 2, 2, 17, 1, tzinfo=UTC)
    assert (tc.cmp_id, tc.cmp_version, tc.consent_screen) == (675, 2, 1)
    assert tc.vendor_list_version == 15
    assert tc.policy_version == 2
    assert tc.consent_language == "EN"
    assert tc.publisher_cc == "AA"
    assert tc.is_service_specific is False
    assert tc.purpose_one_treatment is True
    assert tc.use_non_standard_texts is False
    assert tc.special_feature_opt_ins == {1}
    assert tc.purposes_consent == {2, 10}
    assert tc.purposes_li == {2, 9}


def test_java_bitfield_vendor_sections() -> None:
    tc = decode_tc_string(JAVA_BITFIELDS)
    assert tc.purposes_consent == {3, 4, 5, 6, 7, 8, 9}
    assert tc.vendor_consents.to_list() == [23, 37, 47, 48, 53, 65, 98]
    assert tc.vendor_li.to_list() == [37, 47, 48, 53, 65, 98, 129]
    assert tc.disclosed_vendors is None and tc.publisher_tc is None


def test_java_disclosed_and_allowed_vendor_segments() -> None:
    tc = decode_tc_string(JAVA_SEGMENTS)
    assert tc.allowed_vendors is not None and tc.allowed_vendors.to_list() == [12, 23, 37, 47, 48, 53]
    assert tc.disclosed_vendors is not None
    assert tc.disclosed_vendors.to_list() == [23, 37, 47, 48, 53, 65, 98, 129]


def test_java_publisher_tc_segment_with_padding() -> None:
    tc = decode_tc_string(JAVA_SEGMENTS + ".cAAAAAAAITg=")
    assert tc.publisher_tc is not None
    assert tc.publisher_tc.purposes_consent == {1}
    assert consented_purposes(tc) == {1}


def test_java_publisher_purposes_and_custom_purposes() -> None:
    segment = bits_to_b64("011" + "1" + "0" * 23 + "0" * 23 + "1" + "000010" + "01" + "11" + "000")
    tc = decode_tc_string(JAVA_BASIC + "." + segment)
    assert tc.publisher_tc is not None
    assert tc.publisher_tc.purposes_consent == {1}
    assert tc.publisher_tc.purposes_li == {24}
    assert tc.publisher_tc.custom_purposes_consent == {2}
    assert tc.publisher_tc.custom_purposes_li == {1, 2}


def test_java_range_encoded_vendor_sections() -> None:
    assert decode_tc_string("COv__-wOv__-wC2AAAENAPCgAAAAAAAAAAAAA_wAQA_gEBABAEAAAA").vendor_li.to_list() == [128]
    assert decode_tc_string(JAVA_TWO_RANGES).vendor_consents.to_list() == [702, 703]
    one_range = JAVA_TWO_RANGES.replace("FfwAYFfAV-BVkAGBVYFWAAA", "FfwAQFfgUbABAUaAAA")
    assert decode_tc_string(one_range).vendor_consents.to_list() == [703]


def test_java_purposes_consent() -> None:
    assert {1, 2} <= decode_tc_string("COwxsONOwxsONKpAAAENAdCAAMAAAAAAAAAAAAAAAAAA").purposes_consent


def test_java_publisher_restrictions() -> None:
    core = (
        "0000100011101011100"
        + "1000000000000001010"
        + "0000001110101110010"
        + "0000000000000101000"
        + "0000110011111000000"
        + "0000000000000000100"
        + "0011010000000011110"
        + "0001000000000000000"
        + "0000000000000000000" * 5
        + "000000000011"  # NumPubRestrictions = 3
    )
    restrictions = "000001" + "01" + "0" * 12 + "000010" + "00" + "0" * 12 + "000011" + "10" + "0" * 12 + "0"
    tc = decode_tc_string(bits_to_b64(core + restrictions))
    assert [(r.purpose_id, r.restriction_type, r.vendors.to_list()) for r in tc.publisher_restrictions] == [
        (1, 1, []),
        (2, 0, []),
        (3, 2, []),
    ]


def test_es_issue_201_duplicate_restriction_ranges_merge() -> None:
    tc = decode_tc_string(ES_ISSUE_201)
    assert tc.version == 2
    assert tc.restriction_vendors(1, 1).to_list() == [7, 20, 71, 122, 140, 183]


def test_es_issue_142_bitfield_shorter_than_max_vendor_id_is_rejected() -> None:
    with pytest.raises(TCFError) as info:
        decode_tc_string(ES_ISSUE_142)
    assert info.value.code == "tcf_invalid"


def test_es_issue_156_version_1_strings_are_not_supported() -> None:
    with pytest.raises(TCFError, match="version 1"):
        decode_tc_string(ES_ISSUE_156_V1)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not base64!",
        "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA.",
        "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA.%%%",
        "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIA",  # truncated core
        "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA.QAagAQAgAIAwgA.QAagAQAgAIAwgA",  # repeated segment
        "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA." + bits_to_b64("111" + "0" * 13),  # unknown segment
        "C" * 20000,
        "COtybn4PA+zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA",  # standard, not URL-safe, base64
        "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA\n.QAagAQAgAIAwgA",  # newline inside
    ],
)
def test_malformed_strings_are_rejected(value: str) -> None:
    with pytest.raises(TCFError):
        decode_tc_string(value)


def encode(
    *,
    created: dt.datetime = dt.datetime(2026, 4, 1, tzinfo=UTC),
    policy_version: int = 4,
    service_specific: bool = True,
    purposes: frozenset[int] = frozenset({1, 7, 8, 9}),
    purposes_li: frozenset[int] = frozenset({2}),
    vendors: tuple[int, ...] = (1, 5, 700),
    ranged: bool = False,
    disclosed: tuple[int, ...] | None = (1, 5, 700, 755),
    special_features: frozenset[int] = frozenset(),
    cmp_id: int = 300,
    language: str = "DE",
) -> str:
    ds = int(created.timestamp() * 10)
    core = (
        uint(2, 6)
        + uint(ds, 36)
        + uint(ds, 36)
        + uint(cmp_id, 12)
        + uint(3, 12)
        + uint(2, 6)
        + letters(language)
        + uint(140, 12)
        + uint(policy_version, 6)
        + ("1" if service_specific else "0")
        + "0"
        + flags(special_features, 12)
        + flags(purposes, 24)
        + flags(purposes_li, 24)
        + "0"
        + letters("DE")
        + vendor_bits(list(vendors), ranged)
        + vendor_bits([], False)
        + uint(0, 12)
    )
    value = bits_to_b64(core)
    if disclosed is not None:
        value += "." + bits_to_b64(uint(1, 3) + vendor_bits(list(disclosed), False))
    return value


def test_a_v22_string_built_to_the_spec_validates() -> None:
    tc = parse_tc_string(encode())
    assert tc.policy_version == 4 and tc.is_service_specific
    assert vendor_consented(tc, 5) and not vendor_consented(tc, 6)
    assert tc.disclosed_vendors is not None and 755 in tc.disclosed_vendors


def test_vendor_consent_without_disclosure_does_not_count() -> None:
    tc = parse_tc_string(encode(vendors=(1, 9), disclosed=(1,)))
    assert vendor_consented(tc, 1) and not vendor_consented(tc, 9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy_version": 2}, "policy version"),
        ({"policy_version": 9}, "policy version"),
        ({"service_specific": False}, "service-specific"),
        ({"purposes_li": frozenset({2, 4})}, "legitimate interest"),
        ({"disclosed": None}, "DisclosedVendors"),
    ],
)
def test_validation_rejects_strings_a_server_must_not_honour(kwargs: dict[str, object], message: str) -> None:
    tc = decode_tc_string(encode(**kwargs))  # type: ignore[arg-type]
    with pytest.raises(TCFError, match=message):
        validate_tc_string(tc)


def test_disclosed_vendors_are_optional_before_the_v23_deadline_and_rules_are_configurable() -> None:
    old = encode(created=dt.datetime(2025, 6, 1, tzinfo=UTC), disclosed=None)
    assert parse_tc_string(old).disclosed_vendors is None
    lenient = TCFRules(min_policy_version=2, require_service_specific=False)
    assert parse_tc_string(JAVA_BASIC, lenient).cmp_id == 675
    with pytest.raises(TCFError):
        parse_tc_string(JAVA_BASIC)


def test_tcf_purposes_map_onto_policy_purposes() -> None:
    policy = Policy.model_validate(
        {
            "policy": {"name": "p", "version": "1", "effective_date": "2026-01-01"},
            "categories": {},
            "purposes": {
                "analytics": {"legal_basis": "consent", "consent": "opt_in", "tcf_purposes": [7, 8, 9]},
                "ads": {"legal_basis": "consent", "consent": "opt_in", "tcf_purposes": [1, 3, 4]},
                "orders": {"legal_basis": "contract"},
            },
        }
    )
    tc = parse_tc_string(encode(purposes=frozenset({1, 7, 8, 9})))
    assert map_to_policy(policy, tc) == {"analytics": True, "ads": False}


def test_idset_merges_ranges_and_answers_membership_without_expanding() -> None:
    ids = IdSet([(1, 65535), (1, 65535)] * 2000)
    assert ids.ranges == ((1, 65535),)
    assert 65535 in ids and 0 not in ids and 65536 not in ids and "1" not in ids
    assert len(ids) == 65535
    assert IdSet.of([3, 1, 2, 7]).ranges == ((1, 3), (7, 7))


@given(
    created=st.datetimes(min_value=dt.datetime(2026, 3, 2), max_value=dt.datetime(2090, 1, 1), timezones=st.just(UTC)),
    purposes=st.frozensets(st.integers(1, 24)),
    purposes_li=st.frozensets(st.sampled_from([1, 2, 7, 8, 9, 10, 11])),
    special_features=st.frozensets(st.integers(1, 12)),
    vendors=st.lists(st.integers(1, 2000), unique=True, max_size=40).map(lambda v: tuple(sorted(v))),
    ranged=st.booleans(),
    cmp_id=st.integers(0, 4095),
    language=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
)
def test_any_string_built_to_the_spec_decodes_to_what_was_encoded(
    created: dt.datetime,
    purposes: frozenset[int],
    purposes_li: frozenset[int],
    special_features: frozenset[int],
    vendors: tuple[int, ...],
    ranged: bool,
    cmp_id: int,
    language: str,
) -> None:
    value = encode(
        created=created,
        purposes=purposes,
        purposes_li=purposes_li,
        special_features=special_features,
        vendors=vendors,
        ranged=ranged,
        disclosed=vendors,
        cmp_id=cmp_id,
        language=language,
    )
    tc = parse_tc_string(value)
    assert tc.created == dt.datetime.fromtimestamp(int(created.timestamp() * 10) / 10, UTC)
    assert tc.purposes_consent == purposes
    assert tc.purposes_li == purposes_li
    assert tc.special_feature_opt_ins == special_features
    assert tc.vendor_consents.to_list() == list(vendors)
    assert (tc.cmp_id, tc.consent_language) == (cmp_id, language)
    assert all(vendor_consented(tc, v) for v in vendors)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(data: bytes) -> None:
    value = base64.urlsafe_b64encode(data).decode().rstrip("=")
    with contextlib.suppress(TCFError):
        decode_tc_string(value)
