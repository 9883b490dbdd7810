"""Payment card numbers: normalise, check, classify, and keep only the clear twins PCI allows.

PCI DSS keeps the card verification code (CVV/CVC/CID) out of storage even when encrypted
(3.3.1): nothing here accepts or returns one, and `is_sensitive_authentication_field` lets the
caller strip it from a body before anything is stored. A displayed PAN shows the last four
digits at most by default (3.4.1).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from ..errors import PrivacyError

_SEPARATORS = re.compile(r"[ \-]")
_DIGITS = re.compile(r"[0-9]{12,19}")


class CardBrand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    JCB = "jcb"
    UNIONPAY = "unionpay"
    DINERS = "diners"
    MAESTRO = "maestro"


# (brand, inclusive prefix ranges as (low, high) strings of equal length, allowed lengths)
_RULES: tuple[tuple[CardBrand, tuple[tuple[str, str], ...], frozenset[int]], ...] = (
    (CardBrand.AMEX, (("34", "34"), ("37", "37")), frozenset({15})),
    (
        CardBrand.DINERS,
        (("300", "305"), ("3095", "3095"), ("36", "36"), ("38", "39")),
        frozenset(range(14, 20)),
    ),
    (CardBrand.JCB, (("3528", "3589"),), frozenset(range(16, 20))),
    (CardBrand.VISA, (("4", "4"),), frozenset({13, 16, 19})),
    (CardBrand.MASTERCARD, (("51", "55"), ("2221", "2720")), frozenset({16})),
    (CardBrand.DISCOVER, (("6011", "6011"), ("644", "649"), ("65", "65")), frozenset(range(16, 20))),
    (CardBrand.UNIONPAY, (("62", "62"), ("81", "81")), frozenset(range(16, 20))),
    (
        CardBrand.MAESTRO,
        (
            ("5018", "5018"),
            ("5020", "5020"),
            ("5038", "5038"),
            ("56", "58"),
            ("5893", "5893"),
            ("6304", "6304"),
            ("639", "639"),
            ("6759", "6759"),
            ("6761", "6763"),
            ("67", "67"),
        ),
        frozenset(range(12, 20)),
    ),
)

_SAD_NAMES = frozenset(
    {
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "cid",
        "csc",
        "cav2",
        "securitycode",
        "cardsecuritycode",
        "verificationcode",
        "cardverificationcode",
        "cardcvv",
        "cardcvc",
        "track",
        "track1",
        "track2",
        "trackdata",
        "magstripe",
        "pin",
        "pinblock",
    }
)


def normalise_pan(text: str) -> str:
    """Digits only: spaces and dashes removed; anything else, or a wrong length, is refused."""
    digits = _SEPARATORS.sub("", text.strip())
    if not _DIGITS.fullmatch(digits):
        raise PrivacyError("invalid_card_number", "the card number is not 12 to 19 digits", 400)
    return digits


# Each digit doubled, less 9 when above 9 (the Luhn step for every second digit from the right).
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def ascii_digits(digits: str) -> str:
    """Decimal digits of any script (full-width, Arabic-Indic, ...) as the ASCII digits of the same
    values: a shop's parser may read them as a number (Python's int() does), so checks read them too."""
    if digits.isascii():
        return digits
    return "".join(str(unicodedata.decimal(char, char)) for char in digits)


def luhn_valid(digits: str) -> bool:
    """The mod-10 check digit test (ISO/IEC 7812-1) on a string of ASCII digits (in C: the digits
    from the right, every second one doubled by a table, summed as bytes). The doubled digits are
    every second one from the left, starting at the first when the length is even, at the second
    when it is odd: two forward slices, no reversed copy."""
    if not digits.isdigit() or not digits.isascii():  # "" is not a digit string
        return False
    data = digits.encode("ascii")
    size = len(data)
    odd = size & 1
    total = sum(data[odd ^ 1 :: 2]) + sum(data[odd::2].translate(_LUHN_DOUBLED)) - 48 * size
    return total % 10 == 0


def _matches(pan: str, low: str, high: str) -> bool:
    prefix = pan[: len(low)]
    return len(prefix) == len(low) and low <= prefix <= high


def card_brand(pan: str) -> CardBrand | None:
    """The scheme a card number belongs to, from its leading digits (None when unknown)."""
    return _brand_of_prefix(pan[:_BRAND_DIGITS])


# The brand depends on the first digits only (the longest range bound): decided once per prefix, and
# only those few digits are kept, never a card number.
_BRAND_DIGITS = max(len(low) for _brand, ranges, _lengths in _RULES for low, _high in ranges)


@lru_cache(maxsize=4096)
def _brand_of_prefix(prefix: str) -> CardBrand | None:
    return scan_brand(prefix)


def scan_brand(pan: str) -> CardBrand | None:
    """`card_brand` by a walk over every rule (what the kept answer per prefix stands for)."""
    for brand, ranges, _lengths in _RULES:
        if any(_matches(pan, low, high) for low, high in ranges):
            return brand
    return None


# The lengths each scheme issues, by brand (None: an unknown scheme, 12 to 19 digits).
_LENGTHS: dict[CardBrand | None, frozenset[int]] = {brand: lengths for brand, _ranges, lengths in _RULES}
_LENGTHS.setdefault(None, frozenset(range(12, 20)))


def length_valid(pan: str, brand: CardBrand | None = None) -> bool:
    """Whether the number has a length the scheme issues (12-19 for unknown schemes)."""
    brand = card_brand(pan) if brand is None else brand
    return len(pan) in _LENGTHS[brand]


def check_pan(text: str) -> tuple[str, CardBrand | None]:
    """`validate_pan`'s digits and their brand, decided once (the brand companion reuses it).

    A value that is already 12 to 19 ASCII digits is its own normal form (`normalise_pan` would
    strip nothing and remove nothing): it skips the two regular expressions."""
    pan = text if 12 <= len(text) <= 19 and text.isdigit() and text.isascii() else normalise_pan(text)
    brand = card_brand(pan)
    if len(pan) not in _LENGTHS[brand]:
        raise PrivacyError("invalid_card_number", "the card number has the wrong length for its scheme", 400)
    if not luhn_valid(pan):
        raise PrivacyError("invalid_card_number", "the card number fails the check digit test", 400)
    return pan, brand


def validate_pan(text: str) -> str:
    """Normalise and check a card number before it is encrypted; returns the digits."""
    return check_pan(text)[0]


def mask_pan(pan: str) -> str:
    """The PAN as it may be displayed by default: the last four digits only (PCI DSS 3.4.1)."""
    digits = normalise_pan(pan)
    return "•" * (len(digits) - 4) + digits[-4:]


def is_sensitive_authentication_field(name: str) -> bool:
    """True for field names that carry CVV/CVC, track data or PIN, which must never be stored."""
    return re.sub(r"[^a-z0-9]", "", name.lower()) in _SAD_NAMES


@dataclass(frozen=True, slots=True)
class CardCompanions:
    """The clear twins kept beside an encrypted PAN: enough to show and route, never a CVV."""

    last4: str
    brand: CardBrand | None
    exp_month: int | None = None
    exp_year: int | None = None

    @classmethod
    def from_pan(cls, pan: str, *, exp_month: int | None = None, exp_year: int | None = None) -> CardCompanions:
        digits = validate_pan(pan)
        if exp_month is not None and not 1 <= exp_month <= 12:
            raise PrivacyError("invalid_card_expiry", "the expiry month must be 1 to 12", 400)
        if exp_year is not None:
            if 0 <= exp_year <= 99:
                exp_year += 2000
            if not 2000 <= exp_year <= 2199:
                raise PrivacyError("invalid_card_expiry", "the expiry year is out of range", 400)
        return cls(last4=digits[-4:], brand=card_brand(digits), exp_month=exp_month, exp_year=exp_year)
