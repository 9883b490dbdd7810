"""Output transforms that need no key: masks and generalisations. Pure functions of the value,
named by the transform table (policy/transforms.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_DIGITS = re.compile(r"\D")


def _leaves(value: Any, fn: Callable[[str], Any]) -> Any:
    """Apply to every string (and number) leaf of an object or list, so a whole address can be masked."""
    if isinstance(value, dict):
        return {k: _leaves(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_leaves(v, fn) for v in value]
    if value is None or isinstance(value, bool):
        return value
    return fn(str(value))


def mask_last4(text: str) -> str:
    digits = _DIGITS.sub("", text)
    tail = digits[-4:] if len(digits) >= 8 else ""
    return f"****{tail}" if tail else "****"


def mask_card(text: str) -> str:
    """A card number as displayed by default (PCI DSS 3.4.1): a bullet per hidden digit, the last four."""
    digits = _DIGITS.sub("", text)
    return "\u2022" * (len(digits) - 4) + digits[-4:] if len(digits) >= 8 else "****"


def mask_email(text: str) -> str:
    local, at, domain = text.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_phone(text: str) -> str:
    digits = _DIGITS.sub("", text)
    if len(digits) < 6:
        return "***"
    return "*" * (len(digits) - 2) + digits[-2:]


def mask_full(_text: str) -> str:
    return "***"


def postal_prefix(text: str) -> str:
    compact = text.strip().upper()
    if " " in compact:  # UK-style "SW1A 1AA": the outward code
        return compact.split()[0]
    return compact[:3]


def birth_year(text: str) -> str | None:
    match = re.match(r"^\s*(\d{4})", text)
    return match.group(1) if match else None


COUNTRY_KEYS = ("country", "country_code", "countryCode", "country_area")


def country_only(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in COUNTRY_KEYS}
    return None


# The functions policy/transforms.py names: a whole value in (a string, or an object or list whose
# leaves are masked one by one), the masked value out.


def last4(value: Any) -> Any:
    return _leaves(value, mask_last4)


def card(value: Any) -> Any:
    return _leaves(value, mask_card)


def email(value: Any) -> Any:
    return _leaves(value, mask_email)


def phone(value: Any) -> Any:
    return _leaves(value, mask_phone)


def full(value: Any) -> Any:
    return _leaves(value, mask_full)


def postal_area(value: Any) -> Any:
    return _leaves(value, postal_prefix)


def year_of_birth(value: Any) -> Any:
    return _leaves(value, birth_year)
