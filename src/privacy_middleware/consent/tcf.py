"""IAB TCF v2.2/v2.3 TC string: decode every core field and the optional segments, then validate.

Decoding (`decode_tc_string`) is exact and does not judge; validation (`validate_tc_string`) applies
the rules a server must enforce. Vendor sets stay as merged id ranges (`IdSet`), so a string full of
wide ranges cannot make us build millions of integers.
Reference: "Consent string and vendor list formats v2" (IAB Tech Lab, v2.3).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ..errors import PrivacyError
from ..policy.schema import Policy

# Far above any real TC string (a few KB); bounds the work a hostile one can cause.
MAX_TC_STRING_LENGTH = 16384
SEGMENT_DISCLOSED_VENDORS = 1
SEGMENT_ALLOWED_VENDORS = 2
SEGMENT_PUBLISHER_TC = 3
RESTRICTION_NOT_ALLOWED = 0
RESTRICTION_REQUIRE_CONSENT = 1
RESTRICTION_REQUIRE_LI = 2
# v2.3: strings created after this instant must carry the DisclosedVendors segment.
DISCLOSED_VENDORS_REQUIRED_AFTER = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class TCFError(PrivacyError):
    """A TC string that cannot be decoded or must not be honoured. Code: `tcf_invalid`."""

    def __init__(self, message: str) -> None:
        super().__init__("tcf_invalid", message, 400)


class IdSet:
    """An immutable set of positive ids held as sorted, merged, inclusive ranges."""

    __slots__ = ("_ends", "_ranges", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        merged: list[tuple[int, int]] = []
        for start, end in sorted(ranges):
            if merged and start <= merged[-1][1] + 1:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        self._ranges = tuple(merged)
        self._starts = [r[0] for r in merged]
        self._ends = [r[1] for r in merged]

    @classmethod
    def of(cls, ids: Iterable[int]) -> IdSet:
        return cls((i, i) for i in ids)

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return self._ranges

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int):
            return False
        index = bisect.bisect_right(self._starts, item) - 1
        return index >= 0 and item <= self._ends[index]

    def __iter__(self) -> Iterator[int]:
        for start, end in self._ranges:
            yield from range(start, end + 1)

    def __len__(self) -> int:
        return sum(end - start + 1 for start, end in self._ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdSet) and self._ranges == other._ranges

    def __hash__(self) -> int:
        return hash(self._ranges)

    def __repr__(self) -> str:
        return f"IdSet({list(self._ranges)!r})"

    def to_list(self) -> list[int]:
        return list(self)


@dataclass(frozen=True, slots=True)
class PublisherRestriction:
    purpose_id: int
    restriction_type: int
    vendors: IdSet


@dataclass(frozen=True, slots=True)
class PublisherTC:
    purposes_consent: frozenset[int]
    purposes_li: frozenset[int]
    num_custom_purposes: int
    custom_purposes_consent: frozenset[int]
    custom_purposes_li: frozenset[int]


@dataclass(frozen=True, slots=True)
class TCString:
    version: int
    created: dt.datetime
    last_updated: dt.datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purposes_consent: frozenset[int]
    purposes_li: frozenset[int]
    purpose_one_treatment: bool
    publisher_cc: str
    vendor_consents: IdSet
    vendor_li: IdSet
    publisher_restrictions: tuple[PublisherRestriction, ...]
    disclosed_vendors: IdSet | None = None
    allowed_vendors: IdSet | None = None
    publisher_tc: PublisherTC | None = None

    def restriction_vendors(self, purpose_id: int, restriction_type: int) -> IdSet:
        """Vendors under one (purpose, restriction type); duplicates across entries merge."""
        ranges: list[tuple[int, int]] = []
        for r in self.publisher_restrictions:
            if r.purpose_id == purpose_id and r.restriction_type == restriction_type:
                ranges.extend(r.vendors.ranges)
        return IdSet(ranges)


class _Bits:
    __slots__ = ("bits", "pos")

    def __init__(self, data: bytes) -> None:
        self.bits = "".join(f"{b:08b}" for b in data)
        self.pos = 0

    def uint(self, width: int, what: str) -> int:
        end = self.pos + width
        if end > len(self.bits):
            raise TCFError(f"TC string is truncated in {what}")
        value = int(self.bits[self.pos : end], 2) if width else 0
        self.pos = end
        return value

    def flag(self, what: str) -> bool:
        return self.uint(1, what) == 1

    def flags(self, width: int, what: str) -> frozenset[int]:
        end = self.pos + width
        if end > len(self.bits):
            raise TCFError(f"TC string is truncated in {what}")
        chunk = self.bits[self.pos : end]
        self.pos = end
        return frozenset(i + 1 for i, bit in enumerate(chunk) if bit == "1")

    def bitfield_ranges(self, width: int, what: str) -> IdSet:
        end = self.pos + width
        if end > len(self.bits):
            raise TCFError(f"TC string is truncated in {what}")
        chunk = self.bits[self.pos : end]
        self.pos = end
        ranges = [(m.start() + 1, m.end()) for m in re.finditer("1+", chunk)]
        return IdSet(ranges)

    def date(self, what: str) -> dt.datetime:
        deciseconds = self.uint(36, what)
        return dt.datetime.fromtimestamp(deciseconds / 10, tz=dt.UTC)

    def letters(self, what: str) -> str:
        out = []
        for _ in range(2):
            value = self.uint(6, what)
            if value > 25:
                raise TCFError(f"TC string has an invalid letter in {what}")
            out.append(chr(ord("A") + value))
        return "".join(out)

    def range_entries(self, what: str, max_id: int | None) -> IdSet:
        count = self.uint(12, what)
        ranges: list[tuple[int, int]] = []
        for _ in range(count):
            is_range = self.flag(what)
            start = self.uint(16, what)
            end = self.uint(16, what) if is_range else start
            if start < 1 or end < start or (max_id is not None and end > max_id):
                raise TCFError(f"TC string has an invalid vendor range in {what}")
            ranges.append((start, end))
        return IdSet(ranges)

    def vendor_section(self, what: str) -> IdSet:
        max_id = self.uint(16, what)
        if self.flag(what):
            return self.range_entries(what, max_id)
        return self.bitfield_ranges(max_id, what)


def _segment_bytes(segment: str) -> bytes:
    if not _SEGMENT_RE.fullmatch(segment):
        raise TCFError("TC string is not URL-safe base64")
    body = segment.rstrip("=")
    if len(body) % 4 == 1:
        raise TCFError("TC string is not URL-safe base64")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise TCFError("TC string is not URL-safe base64") from None


def _decode_core(bits: _Bits) -> dict[str, object]:
    version = bits.uint(6, "Version")
    if version != 2:
        raise TCFError(f"TC string version {version} is not supported (only 2)")
    fields: dict[str, object] = {
        "version": version,
        "created": bits.date("Created"),
        "last_updated": bits.date("LastUpdated"),
        "cmp_id": bits.uint(12, "CmpId"),
        "cmp_version": bits.uint(12, "CmpVersion"),
        "consent_screen": bits.uint(6, "ConsentScreen"),
        "consent_language": bits.letters("ConsentLanguage"),
        "vendor_list_version": bits.uint(12, "VendorListVersion"),
        "policy_version": bits.uint(6, "TcfPolicyVersion"),
        "is_service_specific": bits.flag("IsServiceSpecific"),
        "use_non_standard_texts": bits.flag("UseNonStandardTexts"),
        "special_feature_opt_ins": bits.flags(12, "SpecialFeatureOptIns"),
        "purposes_consent": bits.flags(24, "PurposesConsent"),
        "purposes_li": bits.flags(24, "PurposesLITransparency"),
        "purpose_one_treatment": bits.flag("PurposeOneTreatment"),
        "publisher_cc": bits.letters("PublisherCC"),
        "vendor_consents": bits.vendor_section("vendor consents"),
        "vendor_li": bits.vendor_section("vendor legitimate interests"),
    }
    restrictions = []
    for _ in range(bits.uint(12, "NumPubRestrictions")):
        purpose_id = bits.uint(6, "publisher restrictions")
        restriction_type = bits.uint(2, "publisher restrictions")
        vendors = bits.range_entries("publisher restrictions", None)
        restrictions.append(PublisherRestriction(purpose_id, restriction_type, vendors))
    fields["publisher_restrictions"] = tuple(restrictions)
    return fields


def decode_tc_string(value: str) -> TCString:
    """Decode a TC string exactly as encoded. Raises `TCFError` on anything malformed."""
    if not value or len(value) > MAX_TC_STRING_LENGTH:
        raise TCFError("TC string is empty or too long")
    segments = value.strip().split(".")
    fields = _decode_core(_Bits(_segment_bytes(segments[0])))
    seen: set[int] = set()
    for segment in segments[1:]:
        bits = _Bits(_segment_bytes(segment))
        kind = bits.uint(3, "SegmentType")
        if kind in seen:
            raise TCFError(f"TC string repeats segment type {kind}")
        seen.add(kind)
        if kind == SEGMENT_DISCLOSED_VENDORS:
            fields["disclosed_vendors"] = bits.vendor_section("disclosed vendors")
        elif kind == SEGMENT_ALLOWED_VENDORS:
            fields["allowed_vendors"] = bits.vendor_section("allowed vendors")
        elif kind == SEGMENT_PUBLISHER_TC:
            consent = bits.flags(24, "PubPurposesConsent")
            li = bits.flags(24, "PubPurposesLITransparency")
            count = bits.uint(6, "NumCustomPurposes")
            fields["publisher_tc"] = PublisherTC(
                purposes_consent=consent,
                purposes_li=li,
                num_custom_purposes=count,
                custom_purposes_consent=bits.flags(count, "CustomPurposesConsent"),
                custom_purposes_li=bits.flags(count, "CustomPurposesLITransparency"),
            )
        else:
            raise TCFError(f"TC string has an unknown segment type {kind}")
    return TCString(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TCFRules:
    """What a server requires of a TC string before honouring it."""

    min_policy_version: int = 4
    max_policy_version: int = 5
    require_service_specific: bool = True
    disclosed_vendors_required_after: dt.datetime | None = DISCLOSED_VENDORS_REQUIRED_AFTER


DEFAULT_TCF_RULES = TCFRules()


def validate_tc_string(tc: TCString, rules: TCFRules = DEFAULT_TCF_RULES) -> TCString:
    """Refuse strings a server must not honour (raises `TCFError`); returns the string otherwise."""
    if not rules.min_policy_version <= tc.policy_version <= rules.max_policy_version:
        raise TCFError(f"TCF policy version {tc.policy_version} is not supported")
    if rules.require_service_specific and not tc.is_service_specific:
        raise TCFError("TC string is not service-specific (IsServiceSpecific=0)")
    if tc.policy_version >= 4 and tc.purposes_li & {3, 4, 5, 6}:
        raise TCFError("TC string sets legitimate interest for purposes 3 to 6")
    if (
        rules.disclosed_vendors_required_after is not None
        and tc.created >= rules.disclosed_vendors_required_after
        and tc.disclosed_vendors is None
    ):
        raise TCFError("TC string lacks the DisclosedVendors segment")
    return tc


def parse_tc_string(value: str, rules: TCFRules = DEFAULT_TCF_RULES) -> TCString:
    return validate_tc_string(decode_tc_string(value), rules)


def consented_purposes(tc: TCString) -> frozenset[int]:
    """The TCF purposes the person consented to for the shop's own processing.

    The shop is the publisher: its own purposes are in the PublisherTC segment when the CMP sent
    one; otherwise the core PurposesConsent is the person's consent per purpose.
    """
    if tc.publisher_tc is not None:
        return tc.publisher_tc.purposes_consent
    return tc.purposes_consent


def vendor_consented(tc: TCString, vendor_id: int) -> bool:
    """A vendor counts only if it consented and, when the string discloses vendors, was disclosed."""
    if vendor_id not in tc.vendor_consents:
        return False
    return tc.disclosed_vendors is None or vendor_id in tc.disclosed_vendors


def map_to_policy(policy: Policy, tc: TCString) -> Mapping[str, bool]:
    """Policy purposes with `tcf_purposes` -> whether every mapped TCF purpose is consented."""
    consented = consented_purposes(tc)
    return {
        name: all(p in consented for p in purpose.tcf_purposes)
        for name, purpose in policy.purposes.items()
        if purpose.tcf_purposes
    }
