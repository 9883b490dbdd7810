"""Whether a card number or a fragment of a secret shows in stored or logged text.

Ids (UUIDs in hex), times in microseconds, ciphertext and token strings hold any three or four
digits by chance, so a bare substring test of a fragment fails at random. A fragment counts here
when it stands as a token of its own; a card number counts in any spelling of its digits (with or
without spaces and dashes), or through its last four digits standing alone.
"""

from __future__ import annotations

import re

_SEPARATOR_BETWEEN_DIGITS = re.compile(r"(?<=\d)[ -](?=\d)")


def shows(fragment: str, text: str) -> bool:
    """`fragment` stands in `text` as a token of its own, not inside a longer run of letters and digits."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(fragment)}(?![0-9A-Za-z])", text) is not None


def card_shows(card: str, text: str) -> bool:
    digits = re.sub(r"\D", "", card)
    return digits in _SEPARATOR_BETWEEN_DIGITS.sub("", text) or shows(digits[-4:], text)
