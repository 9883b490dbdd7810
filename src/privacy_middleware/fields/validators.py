"""Input validation for classified fields: refuse bad values before anything is forwarded.

Errors name the field, never echo the value.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..crypto.cards import CardBrand, check_pan
from ..errors import PrivacyError

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE_RE = re.compile(r"^\+?[0-9 ()./-]{6,24}$")


def validate_card_number(value: Any, field: str) -> tuple[str, CardBrand | None]:
    """`validate_field` of a card number: its normalised digits and its brand (decided once, for the
    brand companion), or a 422 naming the field."""
    try:
        return check_pan(str(value) if isinstance(value, str | int) else "")
    except PrivacyError as error:
        raise PrivacyError(
            "invalid_card_number",
            f"The card number in {field!r}: {error.message}.",
            422,
            extra={"field": field},
        ) from None


def validate_field(kind: str, value: Any, field: str) -> str | None:
    """Refuse a value that is not of its kind (422); a card number's normalised digits, else None."""
    if kind == "card_number":
        return validate_card_number(value, field)[0]
    text = str(value) if isinstance(value, str | int) else ""
    if kind == "email":
        if not EMAIL_RE.match(text):
            raise PrivacyError(
                "invalid_email", f"The field {field!r} is not an e-mail address.", 422, extra={"field": field}
            )
    elif kind == "phone":
        if not PHONE_RE.match(text):
            raise PrivacyError(
                "invalid_phone", f"The field {field!r} is not a phone number.", 422, extra={"field": field}
            )
    elif kind == "iso_date":
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            raise PrivacyError(
                "invalid_date", f"The field {field!r} is not a YYYY-MM-DD date.", 422, extra={"field": field}
            ) from None
    return None
