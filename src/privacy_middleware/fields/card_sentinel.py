"""Card data is caught by content, on every route, not only where the policy expected it.

A request body (JSON or a form) is scanned for payment card numbers (13 to 19 digits, spaces or
dashes allowed, Luhn-valid, in a known scheme's range and length) and card security code keys.
Most bodies hold no run of 13 digits at all: a byte-level prefilter (one `translate`, one `find`)
clears them without parsing; only a body that might hold a card is parsed and walked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from ..crypto.cards import card_brand, length_valid, luhn_valid
from .shape_guard import field_path, is_card_code_key

# One pass over the bytes: digits become b"0", ASCII letters lower case, spaces and dashes vanish.
# A possible card number is then a run of 13 zeros; a possible card code key holds one of the hints.
_FOLD = bytes(0x30 if 0x30 <= b <= 0x39 else b + 0x20 if 0x41 <= b <= 0x5A else b for b in range(256))
_DIGIT_RUN = b"0" * 13
_CODE_HINTS = (b"cv", b"csc", b"cid", b"cav", b"ecurity", b"erification")
_PAN_IN_TEXT = re.compile(r"(?<![0-9])[0-9](?:[ \-]?[0-9]){12,18}(?![0-9])")


def _folded(body: bytes) -> bytes:
    return body.translate(_FOLD, b" -")


def may_hold_card_number(body: bytes) -> bool:
    """Byte-level prefilter: False means no run of 13 digits (spaces and dashes allowed) anywhere."""
    return _DIGIT_RUN in _folded(body)


def may_hold_card_code(body: bytes) -> bool:
    """Byte-level prefilter for CVV-like key names (any case)."""
    folded = _folded(body)
    return any(hint in folded for hint in _CODE_HINTS)


def may_hold_card_data(body: bytes) -> bool:
    """Both prefilters over one translated copy of the body."""
    folded = _folded(body)
    return _DIGIT_RUN in folded or any(hint in folded for hint in _CODE_HINTS)


def is_pan(digits: str) -> bool:
    brand = card_brand(digits)
    return brand is not None and length_valid(digits, brand) and luhn_valid(digits)


def pans_in(text: str) -> Iterator[re.Match[str]]:
    """Every card number inside a text (alone or embedded), as regex matches."""
    for match in _PAN_IN_TEXT.finditer(text):
        digits = match.group().replace(" ", "").replace("-", "")
        if is_pan(digits):
            yield match


def _scalar_has_pan(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 13 <= len(str(abs(value))) <= 19 and is_pan(str(abs(value)))
    if isinstance(value, str):
        return next(pans_in(value), None) is not None
    return False


def find_card_data(
    document: Any, *, exempt: frozenset[tuple[int, str | int]] = frozenset()
) -> Iterator[tuple[str, str]]:
    """(field path, "card_number" | "card_code") for card data in a parsed body.

    `exempt` holds (id(parent), key) places the route's own rules already handle.
    """
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            if _scalar_has_pan(node):
                yield field_path(path), "card_number"
            continue
        for key, value in items:
            if (id(node), key) in exempt:
                continue
            if isinstance(key, str) and is_card_code_key(key) and value not in (None, ""):
                yield field_path([*path, key]), "card_code"
            elif isinstance(value, dict | list):
                stack.append((value, [*path, key]))
            elif _scalar_has_pan(value):
                yield field_path([*path, key]), "card_number"


def find_card_data_in_form(body: bytes) -> Iterator[tuple[str, str]]:
    for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if is_card_code_key(key) and value:
            yield field_path([key]), "card_code"
        elif next(pans_in(value), None) is not None or next(pans_in(key), None) is not None:
            yield field_path([key]), "card_number"


def mask_card_numbers(document: Any) -> int:
    """Mask every card number in a parsed body to its last four digits, in place; returns how many."""
    masked = 0
    if not isinstance(document, dict | list):
        return 0
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        items: Any = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if isinstance(value, dict | list):
                stack.append(value)
            elif _scalar_has_pan(value):
                node[key] = _mask_text(str(value))
                masked += 1
    return masked


def _mask_text(text: str) -> str:
    def last_four(match: re.Match[str]) -> str:
        digits = match.group().replace(" ", "").replace("-", "")
        return "\u2022" * (len(digits) - 4) + digits[-4:] if is_pan(digits) else match.group()

    return _PAN_IN_TEXT.sub(last_four, text)
