"""Format-shaped vault tokens: random stand-ins that pass the shop's own validation.

A shop that validates a field (an e-mail address, a phone number, a card number) refuses both a
ciphertext and a `tok_…` reference. A shaped token looks like the real thing — an address at a
reserved domain, an E.164 number under a reserved prefix, digits of a given length, a card alias
that keeps the first six and last four digits and passes Luhn — but is random (never derived from
the value: this is not format-preserving encryption). The value stays in the token vault, encrypted
under the subject's key, so erasing the subject makes every shaped token meaningless.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Literal

from ..errors import PrivacyError
from .cards import luhn_valid, normalise_pan

TokenFormat = Literal["email", "phone", "digits", "card_alias"]
DEFAULT_EMAIL_DOMAIN = "privacy.invalid"  # RFC 2606: .invalid never resolves, so no mail is ever misdelivered
DEFAULT_PHONE_PREFIX = "+999"  # E.164 country code 999 is reserved by the ITU: no real subscriber has it


@dataclass(frozen=True, slots=True)
class TokenShape:
    format: TokenFormat
    # digits: how many; phone: how many digits after the prefix (E.164 allows 15 in all).
    length: int = 0
    prefix: str = ""
    email_domain: str = DEFAULT_EMAIL_DOMAIN

    def looks_shaped(self, value: str) -> bool:
        """A cheap test that a stored value could be one of our tokens (the vault decides)."""
        if self.format == "email":
            return value.lower().endswith("@" + self.email_domain.lower())
        if self.format == "phone":
            return value.startswith(self.prefix or DEFAULT_PHONE_PREFIX)
        return value.isascii() and value.isdigit()


def _email(shape: TokenShape) -> str:
    local = base64.b32encode(secrets.token_bytes(15)).decode().lower()  # 24 letters and digits
    return f"t{local}@{shape.email_domain}"


def _random_digits(count: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(count))


def _phone(shape: TokenShape) -> str:
    prefix = shape.prefix or DEFAULT_PHONE_PREFIX
    count = shape.length or 15 - (len(prefix) - 1)
    return prefix + _random_digits(count)


def _digits(shape: TokenShape) -> str:
    if shape.length < 1:
        raise PrivacyError("invalid_token_shape", "A digits token needs a length.", 500)
    return str(1 + secrets.randbelow(9)) + _random_digits(shape.length - 1)


def card_alias(pan: str) -> str:
    """First six and last four of the card, random digits between, one of them fixed so Luhn passes."""
    digits = normalise_pan(pan)
    middle = len(digits) - 10
    if middle < 2:
        raise PrivacyError("invalid_card_number", "the card number is too short for an alias", 400)
    while True:
        inner = _random_digits(middle - 1)
        for check in "0123456789":
            alias = digits[:6] + inner + check + digits[-4:]
            if luhn_valid(alias):
                break
        if alias != digits:
            return alias


def shaped_token(shape: TokenShape, value: str) -> str:
    if shape.format == "email":
        return _email(shape)
    if shape.format == "phone":
        return _phone(shape)
    if shape.format == "digits":
        return _digits(shape)
    return card_alias(value)
