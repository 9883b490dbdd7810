"""Detectors for personal data pasted where it does not belong (order notes, messages).

Each detector pairs a pattern with a validation (check digit, checksum, structure) so that an order
number or a phone-shaped tracking code is not mistaken for a card or an ID number. Findings carry the
kind and position only, never the matched text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..crypto.cards import ascii_digits, card_brand, length_valid, luhn_valid


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int


_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_PRC_ID = re.compile(r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])")
_SSN = re.compile(r"(?<!\d)(\d{3})[- ](\d{2})[- ](\d{4})(?!\d)")
_IBAN = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)(?![A-Za-z0-9])")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d ()./-]{7,18}\d(?!\w)")

# IBAN lengths by country (ISO 13616 registry), for the structure check before mod 97.
IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AT": 20,
    "BE": 16,
    "BG": 22,
    "CH": 21,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "EE": 20,
    "ES": 24,
    "FI": 18,
    "FR": 27,
    "GB": 22,
    "GR": 27,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IS": 26,
    "IT": 27,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MT": 31,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "RO": 24,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TR": 26,
}
_PRC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_PRC_CHECK = "10X98765432"


def _cards(text: str) -> Iterator[Finding]:
    for match in _CARD.finditer(text):
        digits = ascii_digits(re.sub(r"[ -]", "", match.group()))
        if luhn_valid(digits) and card_brand(digits) is not None and length_valid(digits):
            yield Finding("card_number", match.start(), match.end())


def prc_id_valid(number: str) -> bool:
    """GB 11643-1999: weighted checksum mod 11, plus a real birth date in positions 7-14."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _PRC_WEIGHTS, strict=True))
    return _PRC_CHECK[total % 11] == number[17].upper()


def _prc_ids(text: str) -> Iterator[Finding]:
    for match in _PRC_ID.finditer(text):
        if prc_id_valid(match.group()):
            yield Finding("prc_resident_id", match.start(), match.end())


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: no 000/666/9xx area, no 00 group, no 0000 serial."""
    return area not in {"000", "666"} and not area.startswith("9") and group != "00" and serial != "0000"


def _ssns(text: str) -> Iterator[Finding]:
    for match in _SSN.finditer(text):
        if ssn_valid(*match.groups()):
            yield Finding("us_ssn", match.start(), match.end())


def iban_valid(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _ibans(text: str) -> Iterator[Finding]:
    for match in _IBAN.finditer(text.upper()):
        if iban_valid(match.group(1)):
            yield Finding("iban", match.start(1), match.end(1))


def _emails(text: str) -> Iterator[Finding]:
    for match in _EMAIL.finditer(text):
        yield Finding("email", match.start(), match.end())


def _phones(text: str) -> Iterator[Finding]:
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        # A phone number has 8-15 digits (E.164); card-like runs are the card detector's business.
        if 8 <= len(digits) <= 15 and not (len(digits) >= 13 and luhn_valid(digits)):
            yield Finding("phone", match.start(), match.end())


DETECTORS: dict[str, Callable[[str], Iterator[Finding]]] = {
    "card_number": _cards,
    "prc_resident_id": _prc_ids,
    "us_ssn": _ssns,
    "iban": _ibans,
    "email": _emails,
    "phone": _phones,
}


# Every pattern above but the e-mail one needs a digit (`\\d`): text without one holds none of them.
_NEEDS_DIGIT = frozenset({"card_number", "prc_resident_id", "us_ssn", "iban", "phone"})
_DIGIT = re.compile(r"\d")


def detect(text: str, kinds: Sequence[str]) -> list[Finding]:
    if _DIGIT.search(text) is None and _NEEDS_DIGIT.issuperset(kinds):  # one C call, no generator
        return []
    findings: list[Finding] = []
    for kind in kinds:
        findings.extend(DETECTORS[kind](text))
    return sorted(findings, key=lambda f: f.start)


def redact(text: str, findings: list[Finding]) -> str:
    out, last = [], 0
    for finding in sorted(findings, key=lambda f: f.start):
        if finding.start < last:
            continue
        out.append(text[last : finding.start])
        out.append(f"[{finding.kind} removed]")
        last = finding.end
    out.append(text[last:])
    return "".join(out)
