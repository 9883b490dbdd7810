"""Card numbers written in any decimal digits, found in raw bytes that arrive in pieces.

A shop's parser may read a full-width, Arabic-Indic or other Unicode decimal digit (category Nd)
as the digit of the same value (Python's `int()` does), and JSON may write any of them as a `\\u`
escape of four hex digits (a digit outside the Basic Multilingual Plane as a surrogate pair). A
streamed answer cannot be parsed whole, so its card numbers are found in its bytes: the candidate
pattern matches a run of 13 to 19 such digits (ASCII, UTF-8 or escaped, mixed, with spaces or
dashes) that no other digit touches. The patterns are built from Unicode's own table on first use
(a few tens of milliseconds, paid only by a stream that is not plain ASCII or holds an escape).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache

from ..crypto.cards import ascii_digits

_SEPARATOR = rb"(?:[ \-]|\\u0020|\\u002[dD])"
# Bytes a piece may end with while a card number may still continue in the next piece: ASCII digits,
# separators, escape bytes (hex digits included) and every byte of a multi-byte UTF-8 character.
RUN_BYTES = b"0123456789 -\\uabcdefABCDEF" + bytes(range(0x80, 0x100))
# 19 digits as surrogate-pair escapes (12 bytes each) and 18 escaped separators (6 bytes each).
MAX_RUN_BYTES = 19 * 12 + 18 * 6
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# One written character: an escaped surrogate pair, an escape, a UTF-8 sequence or a byte.
_PIECE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|[\xc0-\xf7][\x80-\xbf]*|.", re.S
)


def _trie(words: Iterable[bytes]) -> bytes:
    """One regex (bytes) matching exactly the given non-empty byte strings, as a trie of their
    common prefixes, so the engine decides by a byte at a time instead of trying every word."""
    branches: dict[int, list[bytes]] = {}
    ends = False
    for word in words:
        if word:
            branches.setdefault(word[0], []).append(word[1:])
        else:
            ends = True
    leaves = sorted(first for first, rests in branches.items() if rests == [b""] or set(rests) == {b""})
    parts = []
    if len(leaves) > 1:
        parts.append(b"[" + b"".join(re.escape(bytes([b])) for b in leaves) + b"]")
    elif leaves:
        parts.append(re.escape(bytes(leaves)))
    for first in sorted(set(branches) - set(leaves)):
        parts.append(re.escape(bytes([first])) + _trie(branches[first]))
    body = b"(?:" + b"|".join(parts) + b")" if len(parts) > 1 else parts[0]
    return b"(?:" + body + b")?" if ends else body


def _escaped(char: str) -> bytes:
    """The JSON escape of one character, lower-case hex (a surrogate pair beyond the BMP)."""
    units = char.encode("utf-16-be")
    return b"".join(b"\\u" + units[i : i + 2].hex().encode() for i in range(0, len(units), 2))


@cache
def _patterns() -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """(a card-number candidate, one digit) over raw JSON bytes, from Unicode's table of decimal digits."""
    wide = [chr(c) for c in range(0x80, 0x20000) if unicodedata.category(chr(c)) == "Nd"]
    by_width: dict[int, list[bytes]] = {}
    for char in wide:
        encoded = char.encode()
        by_width.setdefault(len(encoded), []).append(encoded)
    utf8 = b"|".join(_trie(words) for _, words in sorted(by_width.items()))
    escapes = b"(?i:" + _trie([_escaped(c) for c in wide] + [_escaped(str(d)) for d in range(10)]) + b")"
    digit = b"(?:[0-9]|" + utf8 + b"|" + escapes + b")"
    # no digit (ASCII or UTF-8) right before or after: a longer run is no card number
    behind = b"(?<![0-9])" + b"".join(b"(?<!" + _trie(words) + b")" for _, words in sorted(by_width.items()))
    ahead = b"(?![0-9]|" + utf8 + b")"
    candidate = behind + digit + b"(?:" + _SEPARATOR + b"?" + digit + b"){12,18}" + ahead
    return re.compile(candidate), re.compile(digit)


def wide_pans(data: bytes | bytearray, end: int) -> Iterable[re.Match[bytes]]:
    """Every card-number candidate in data[:end] (the caller checks the digits with `digits_of`)."""
    return _patterns()[0].finditer(data, 0, end)


def digits_of(raw: bytes) -> str:
    """A matched run as ASCII digits: escapes resolved, separators dropped, every digit by its value."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), raw.decode("utf-8"))
    text = text.encode("utf-16", "surrogatepass").decode("utf-16")  # join escaped surrogate pairs
    return ascii_digits(text.replace(" ", "").replace("-", ""))


def star(raw: bytes) -> bytes:
    """Every digit but the last four as "*" of the same byte width (three for a full-width digit,
    six for an escaped one), so a stream keeps its length; the last four stay as written."""
    digit = _patterns()[1]
    pieces: list[bytes] = _PIECE.findall(raw)
    places = [i for i, piece in enumerate(pieces) if digit.fullmatch(piece)]
    hidden = set(places[:-4])
    return b"".join(b"*" * len(piece) if i in hidden else piece for i, piece in enumerate(pieces))
