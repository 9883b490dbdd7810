"""Card data is caught by content, on every route, not only where the policy expected it.

A request body (JSON or a form) is scanned for payment card numbers (13 to 19 digits, spaces or
dashes allowed, Luhn-valid, in a known scheme's range and length) and card security code keys;
a response body for card numbers only. Most bodies hold no run of 13 digits at all: a byte-level
prefilter (one `translate`, one `in`) clears them without parsing; only a body that might hold a
card is parsed and walked. Responses that arrive in pieces are checked piece by piece
(`StreamScan`), masking in place without changing the length.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import orjson

from ..crypto.cards import ascii_digits, card_brand, length_valid, luhn_valid
from . import native, wide_digits
from .shape_guard import field_path, is_card_code_key

# Keys repeat across the records of a body (and across bodies): the spelling-blind check (NFKC,
# casefold, a regex) is asked once per distinct key; the bound keeps odd bodies from growing it.
_is_code_key = lru_cache(maxsize=4096)(is_card_code_key)

# One pass over the bytes: digits become b"0", ASCII letters lower case; spaces, dashes, underscores,
# dots, backslashes and "u" vanish, so JSON escapes of digits (\u0034) fold to digits and `c_v_v` or
# `Security-Code` to their letters. A possible card number is then a run of 13 zeros; a possible
# card code key matches `_CODE_HINTS`, one regex whose literal first byte lets it skip through the
# bytes in one pass (six substring searches took six).
_FOLD = bytes(0x30 if 0x30 <= b <= 0x39 else b + 0x20 if 0x41 <= b <= 0x5A else b for b in range(256))
_DROP = b" -_.\\uU"
_DIGIT_RUN = b"0" * 13
# cvv, cvc, cvn, csc, cid, cav2, (se)crity, (verifi)cation: every name in shape_guard.CARD_CODE_NAMES.
_CODE_HINTS = re.compile(rb"c(?:v|sc|id|av|rity|ation(?<=ification))")
# Any decimal digit (`\d` is Unicode's Nd in a str pattern): a shop's parser may read a full-width
# or Arabic-Indic card number as digits (Python's int() does), so it is a card number here too.
_PAN_IN_TEXT = re.compile(r"(?<!\d)\d(?:[ \-]?\d){12,18}(?!\d)")
_ANY_DIGIT = re.compile(r"\d")
# The same in raw JSON bytes, where a digit or a separator may also be written as a \u escape.
_DIGIT_B = rb"(?:[0-9]|\\u003[0-9])"
_SEP_B = rb"(?:[ \-]|\\u0020|\\u002[dD])"
_PAN_IN_BYTES = re.compile(rb"(?<![0-9])" + _DIGIT_B + rb"(?:" + _SEP_B + rb"?" + _DIGIT_B + rb"){12,18}(?![0-9])")
# Bytes a card number (with escapes) is written with; a piece ending in them may continue in the next.
_ESCAPED = re.compile(rb"\\u00([0-9a-fA-F]{2})")
_RUN_BYTES = b"0123456789 -\\udD"
_MAX_PAN_BYTES = 19 * 6 + 18 * 6
_BARE_BEFORE = frozenset(b":[,")
_BARE_AFTER = frozenset(b",]}")
_SPACE = b" \t\r\n"


def _folded(body: bytes) -> bytes:
    return body.translate(_FOLD, _DROP)


def _digit_run_py(body: bytes) -> int:
    """1 when the folded body holds a run of 13 digits; else 2 for a body that is not plain ASCII
    (it must be read as its parser reads it), else 0. `native.digit_run` answers the same in one C
    pass without the translated copy (tests/properties/test_native_prefilter.py)."""
    if _DIGIT_RUN in _folded(body):
        return 1
    return 0 if body.isascii() else 2


_digit_run = native.digit_run or _digit_run_py


def may_hold_card_number(body: bytes) -> bool:
    """Byte-level prefilter: False means no run of 13 digits (spaces and dashes allowed) anywhere,
    in ASCII or (a body that is not plain ASCII, see `_may_hold_as_read`) in any decimal digits."""
    found = _digit_run(body)
    return found == 1 or (found == 2 and _may_hold_as_read(body))


def may_hold_card_code(body: bytes) -> bool:
    """Byte-level prefilter for CVV-like key names (any case)."""
    return _CODE_HINTS.search(_folded(body)) is not None


def may_hold_card_data(body: bytes) -> bool:
    """Both prefilters over one translated copy of the body; a body that is not plain ASCII is
    also checked as its parser will read it (see `_may_hold_as_read`)."""
    folded = _folded(body)
    if _DIGIT_RUN in folded or _CODE_HINTS.search(folded) is not None:
        return True
    # (a backslash first: one memchr clears most bodies without the two-byte search)
    return not (body.isascii() and (b"\\" not in body or b"\\u" not in body)) and _may_hold_as_read(body)


def _may_hold_as_read(body: bytes) -> bool:
    """A key can spell a card code in a form the bytes do not show: full-width or other Unicode
    compatibility letters (a full-width `cvv`), or JSON escapes of letters (`\\u0063vv`). The body is read as
    the shop's parser reads it (escapes resolved by orjson, in C), brought to NFKC and case-folded,
    and the prefilter runs again on that; what cannot be read goes to the full check."""
    try:
        text = orjson.dumps(orjson.loads(body)).decode() if b"\\u" in body else body.decode()
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        return True
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        text = _ANY_DIGIT.sub("0", text)  # digits NFKC leaves alone (Arabic-Indic, Devanagari, ...)
    folded = _folded(text.encode())
    return _DIGIT_RUN in folded or _CODE_HINTS.search(folded) is not None


def _lengths_by_prefix() -> dict[str, frozenset[int]]:
    """Every 4-digit prefix a scheme issues, with the lengths it issues (a scheme's range is decided
    by at most four leading digits), so a candidate costs one dict look-up before the Luhn test."""
    table: dict[str, frozenset[int]] = {}
    for number in range(10_000):
        prefix = f"{number:04d}"
        brand = card_brand(prefix + "0" * 15)
        if brand is not None:
            table[prefix] = frozenset(n for n in range(12, 20) if length_valid(prefix + "0" * (n - 4), brand))
    return table


_LENGTHS = _lengths_by_prefix()


def is_pan(digits: str) -> bool:
    lengths = _LENGTHS.get(digits[:4])
    return lengths is not None and len(digits) in lengths and luhn_valid(digits)


def pan_digits(candidate: str) -> str:
    """A matched run as the ASCII digits a card number is checked and tokenised as (separators
    dropped; any decimal digit, full-width or Arabic-Indic, read as its value)."""
    return ascii_digits(candidate.replace(" ", "").replace("-", ""))


def pans_in(text: str) -> Iterator[re.Match[str]]:
    """Every card number inside a text (alone or embedded), as regex matches."""
    for match in _PAN_IN_TEXT.finditer(text):
        if is_pan(pan_digits(match.group())):
            yield match


_CONTAINERS = (dict, list)


def _scalar_has_pan(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 13 <= len(str(abs(value))) <= 19 and is_pan(str(abs(value)))
    if isinstance(value, str):
        # one search clears text without a candidate run (most values) before the matches are checked
        return _PAN_IN_TEXT.search(value) is not None and next(pans_in(value), None) is not None
    return False


def _blank(value: Any) -> bool:
    """No card code in it: null or an empty string, parsed or still a raw slice of the body (a
    lazily decoded body keeps the values it did not need as `msgspec.Raw`)."""
    if isinstance(value, msgspec.Raw):
        return bytes(value).strip() in (b"null", b'""')
    return value is None or value == ""


def find_card_data(
    document: Any, *, exempt: frozenset[tuple[int, str | int]] = frozenset()
) -> Iterator[tuple[str, str]]:
    """(field path, "card_number" | "card_code") for card data in a parsed body.

    `exempt` holds (id(parent), key) places the route's own rules already handle.
    """
    # the exempt keys by container, so a container without any costs one look-up, not one per key
    skipped: dict[int, set[str | int]] = {}
    for container, key in exempt:
        skipped.setdefault(container, set()).add(key)
    search = _PAN_IN_TEXT.search
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
        skip = skipped.get(id(node))
        for key, value in items:
            if skip is not None and key in skip:
                continue
            if isinstance(key, str) and _is_code_key(key) and not _blank(value):
                yield field_path([*path, key]), "card_code"
            elif value is None:
                continue  # `_scalar_has_pan(None)` is False
            elif type(value) is str:
                # one search clears text without a candidate run (most values) before the matches
                if search(value) is not None and next(pans_in(value), None) is not None:
                    yield field_path([*path, key]), "card_number"
            elif isinstance(value, _CONTAINERS):
                stack.append((value, [*path, key]))
            elif _scalar_has_pan(value):
                yield field_path([*path, key]), "card_number"


async def tokenise_card_numbers(
    document: Any,
    tokenise: Callable[[str], Awaitable[str]],
    *,
    exempt: frozenset[tuple[int, str | int]] = frozenset(),
) -> list[str]:
    """Replace every card number in a parsed body (outside `exempt` places) by `tokenise(number)`, in
    place: a number alone becomes the token, one inside text is replaced there. Returns the field
    paths (never the values). The caller refuses card codes and numbers in keys first."""
    paths: list[str] = []
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        node, path = stack.pop()
        items: Any = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in list(items):
            if (id(node), key) in exempt:
                continue
            if isinstance(value, dict | list):
                stack.append((value, [*path, key]))
            elif _scalar_has_pan(value):
                node[key] = await _tokenised(value, tokenise)
                paths.append(field_path([*path, key]))
    return paths


async def _tokenised(value: Any, tokenise: Callable[[str], Awaitable[str]]) -> str:
    if not isinstance(value, str):
        return await tokenise(str(abs(value)))
    pieces: list[str] = []
    at = 0
    for match in pans_in(value):
        pieces.append(value[at : match.start()])
        pieces.append(await tokenise(pan_digits(match.group())))
        at = match.end()
    pieces.append(value[at:])
    return "".join(pieces)


def find_card_data_in_form(body: bytes) -> Iterator[tuple[str, str]]:
    for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if is_card_code_key(key) and value:
            yield field_path([key]), "card_code"
        elif next(pans_in(value), None) is not None or next(pans_in(key), None) is not None:
            yield field_path([key]), "card_number"


def _masked_scalar(value: Any) -> str | None:
    """The value with its card numbers masked, or None when it holds none (numbers become text)."""
    if isinstance(value, str):
        if len(value) < 13:
            return None
        for match in _PAN_IN_TEXT.finditer(value):
            if is_pan(pan_digits(match.group())):
                return _mask_text(value)
        return None
    if isinstance(value, float) and value.is_integer() and 1e12 <= abs(value) < 1e19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and _scalar_has_pan(value):
        return _mask_text(str(abs(value)))
    return None


def mask_document(document: Any) -> tuple[Any, int]:
    """(the document with every card number masked to its last four digits, how many): values
    and keys alike, in place where it can; a top-level scalar comes back replaced."""
    top = _masked_scalar(document)
    if top is not None:
        return top, 1
    masked = 0
    stack: list[Any] = [document] if isinstance(document, dict | list) else []
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, dict | list):
                    stack.append(value)
                elif (replaced := _masked_scalar(value)) is not None:
                    node[index] = replaced
                    masked += 1
            continue
        for key, value in list(node.items()):
            if isinstance(value, dict | list):
                stack.append(value)
            elif (replaced := _masked_scalar(value)) is not None:
                node[key] = value = replaced
                masked += 1
            if (new_key := _masked_scalar(key)) is not None:
                del node[key]
                node[new_key] = value
                masked += 1
    return document, masked


def mask_card_numbers(document: Any) -> int:
    """Mask every card number in a parsed body to its last four digits, in place; returns how many."""
    return mask_document(document)[1] if isinstance(document, dict | list) else 0


def mask_json_body(body: bytes) -> tuple[bytes, int]:
    """(the body with its card numbers masked, how many) for a whole JSON body.

    Parsed when it can be (escapes decoded, numbers and keys seen for what they are; stdlib json for
    integers past 64 bits); a body that does not parse is masked in its bytes."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = body
    masked = 0
    if document is not body:
        document, masked = mask_document(document)
        if masked:
            try:
                body = orjson.dumps(document)
            except TypeError:
                body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    if document is not body:
        return body, masked  # parsed: every string, number and key was seen
    out = bytearray(body)
    late = mask_bytes(out, 0, len(out), None)
    return (bytes(out) if late else body), late


def mask_bytes(buf: bytearray, start: int, end: int, before: int | None) -> int:
    """Mask card numbers in buf[start:end] in place without changing its length; returns how many.

    Every hidden digit (or its \\u escape) becomes "*". A card number written as a bare JSON number
    (after ":", "[" or ",", before ",", "]" or "}") becomes a quoted string of the same length, so
    the JSON stays valid. `before` is the last byte before `start` that was not white space, when it
    lies in an earlier piece."""
    return sum(_mask_match(buf, match, start, end, before) for match in _PAN_IN_BYTES.finditer(buf, start, end))


def _mask_match(buf: bytearray, match: re.Match[bytes], start: int, end: int, before: int | None) -> bool:
    """Mask one ASCII candidate of buf[start:end] in place if it is a card number (see `mask_bytes`)."""
    raw = match.group()
    if not is_pan(_digits_of(raw)):
        return False
    a, b = match.span()
    head = bytes(buf[start:a]).rstrip(_SPACE)
    prev = head[-1] if head else before
    tail = bytes(buf[b:end]).lstrip(_SPACE)
    if raw.isdigit() and len(raw) >= 6 and prev in _BARE_BEFORE and (not tail or tail[0] in _BARE_AFTER):
        buf[a:b] = b'"' + b"*" * (len(raw) - 6) + raw[-4:] + b'"'
    else:
        buf[a:b] = _star(raw)
    return True


def _digits_of(raw: bytes) -> str:
    text = _ESCAPED.sub(lambda m: bytes([int(m.group(1), 16)]), raw).decode("latin-1")
    return text.replace(" ", "").replace("-", "")


def _star(raw: bytes) -> bytes:
    """Every digit but the last four as "*" of the same width (an escaped digit is six bytes)."""
    pieces = re.findall(rb"\\u00[0-9a-fA-F]{2}|.", raw, re.S)
    digit_places = [i for i, piece in enumerate(pieces) if piece.isdigit() or piece.startswith(b"\\u003")]
    keep = set(digit_places[-4:])
    return b"".join(
        piece if (i in keep or not (piece.isdigit() or piece.startswith(b"\\u003"))) else b"*" * len(piece)
        for i, piece in enumerate(pieces)
    )


class StreamScan:
    """A body checked piece by piece: each piece goes on masked, less its open tail.

    The tail held back is the piece's trailing run of bytes a card number can be written with
    (digits, separators, escapes), at most the longest such number: the only bytes a later piece
    can still turn into a card number. A piece that ends in a letter, a quote or a brace is passed
    on whole, so a stream without card numbers is delayed by a few bytes at most, never buffered.
    """

    __slots__ = ("before", "carry", "masked")

    def __init__(self) -> None:
        self.carry = b""
        self.before: int | None = None
        self.masked = 0

    def feed(self, piece: bytes, final: bool) -> bytes:
        """The bytes that may go on now (masked where needed); the rest waits for the next piece."""
        data = self.carry + piece if self.carry else piece
        if not data.isascii() or b"\\u" in data:
            return self._feed_wide(data, final)
        hold = 0 if final else min(len(data) - len(data.rstrip(_RUN_BYTES)), _MAX_PAN_BYTES)
        if _DIGIT_RUN not in _folded(data):
            ready = data[: len(data) - hold] if hold else data
        else:
            buf = bytearray(data)
            cut = len(buf) - hold
            for match in _PAN_IN_BYTES.finditer(buf):
                if match.start() < cut < match.end():
                    cut = match.start()  # a number crossing the cut waits whole
            self.masked += mask_bytes(buf, 0, cut, self.before)
            ready = bytes(buf[:cut])
            hold = len(buf) - cut
        self.carry = data[len(data) - hold :] if hold else b""
        return self._went(ready)

    def _feed_wide(self, data: bytes, final: bool) -> bytes:
        """`feed` for bytes that may write digits other than ASCII ones (UTF-8 or escaped): the
        held tail may end inside a character, and a candidate is matched by `wide_digits`."""
        hold = 0 if final else min(len(data) - len(data.rstrip(wide_digits.RUN_BYTES)), wide_digits.MAX_RUN_BYTES)
        buf = bytearray(data)
        cut = len(buf) - hold
        found = list(wide_digits.wide_pans(buf, len(buf)))  # one pass: the cut, then what lies before it
        for match in found:
            if match.start() < cut < match.end():
                cut = match.start()  # a number crossing the cut waits whole
        for match in found:
            if match.end() > cut:
                break
            raw = match.group()
            if raw.isascii() and b"\\u" not in raw:
                self.masked += _mask_match(buf, match, 0, cut, self.before)
            elif is_pan(wide_digits.digits_of(raw)):
                buf[match.start() : match.end()] = wide_digits.star(raw)
                self.masked += 1
        self.carry = data[cut:]
        return self._went(bytes(buf[:cut]))

    def _went(self, ready: bytes) -> bytes:
        stripped = ready.rstrip(_SPACE)
        if stripped:
            self.before = stripped[-1]
        return ready


def _mask_text(text: str) -> str:
    def last_four(match: re.Match[str]) -> str:
        digits = pan_digits(match.group())
        return "\u2022" * (len(digits) - 4) + digits[-4:] if is_pan(digits) else match.group()

    return _PAN_IN_TEXT.sub(last_four, text)
