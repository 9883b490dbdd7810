"""Input validation for classified fields: refuse bad values before anything is forwarded.

Errors name the field, never echo the value.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..errors import PrivacyError

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE_RE = re.compile(r"^\+?[0-9 ()./-]{6,24}$")


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def validate_field(kind: str, value: Any, field: str) -> None:
    text = str(value) if isinstance(value, str | int) else ""
    if kind == "card_number":
        problem = card_number_problem(text)
        if problem:
            raise PrivacyError(
                "invalid_card_number", f"The card number in {field!r} {problem}.", 422, extra={"field": field}
            )
    elif kind == "email":
        if not EMAIL_RE.match(text):
            raise PrivacyError("invalid_email", f"The field {field!r} is not an e-mail address.", 422,
                               extra={"field": field})
    elif kind == "phone":
        if not PHONE_RE.match(text):
            raise PrivacyError("invalid_phone", f"The field {field!r} is not a phone number.", 422,
                               extra={"field": field})
    elif kind == "iso_date":
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            raise PrivacyError("invalid_date", f"The field {field!r} is not a YYYY-MM-DD date.", 422,
                               extra={"field": field}) from None


def card_number_problem(text: str) -> str | None:
    """Why a card number is unacceptable (without saying what it was), or None."""
    digits = re.sub(r"[ -]", "", text)
    if not digits.isdigit():
        return "must contain digits only"
    if not 12 <= len(digits) <= 19:
        return "has the wrong length"
    if not luhn_valid(digits):
        return "fails the Luhn check"
    return None
