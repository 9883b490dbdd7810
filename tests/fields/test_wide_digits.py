"""Streamed answers: a card number in every script's decimal digits is masked in place, whatever
the piece boundaries, as UTF-8 or as JSON escapes; a longer digit run is no card number."""

from __future__ import annotations

import unicodedata

import orjson
import pytest

from privacy_middleware.fields.card_sentinel import StreamScan

PAN = "4111111111111111"
# The zero of every block of ten decimal digits Unicode has (category Nd), ASCII's included.
ZEROS = [c for c in range(0x20000) if unicodedata.category(chr(c)) == "Nd" and unicodedata.decimal(chr(c)) == 0]


def streamed(body: bytes, size: int) -> tuple[bytes, int]:
    scan, out = StreamScan(), b""
    pieces = [body[at : at + size] for at in range(0, len(body), size)] or [b""]
    for i, piece in enumerate(pieces):
        out += scan.feed(piece, final=i == len(pieces) - 1)
    return out, scan.masked


def in_block(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) for c in text)


def test_there_are_many_digit_blocks() -> None:
    assert len(ZEROS) > 60 and 0xFF10 in ZEROS and 0x1D7CE in ZEROS


def escaped(text: str) -> str:
    """Each character as JSON \\u escapes of its UTF-16 units (a surrogate pair beyond the BMP)."""
    data = text.encode("utf-16-be")
    return "".join(f"\\u{data[i : i + 2].hex()}" for i in range(0, len(data), 2))


@pytest.mark.parametrize("size", [1, 5, 4096])
def test_every_script_is_masked_as_utf8_and_escaped(size: int) -> None:
    for zero in ZEROS:
        number = in_block(PAN, zero)
        for written in (number, escaped(number), escaped(number).upper().replace("\\U", "\\u")):
            body = b'{"card": "' + written.encode() + b'", "city": "Besan\xc3\xa7on"}'
            out, masked = streamed(body, size)
            assert masked == 1 and len(out) == len(body), (hex(zero), body)
            document = orjson.loads(out)
            assert document["card"].endswith(in_block("1111", zero)), (hex(zero), document)
            assert set(document["card"][:-4]) == {"*"} and document["city"] == "Besançon"


def test_a_longer_run_of_digits_is_no_card_number() -> None:
    for zero in (0x0660, 0xFF10, 0x1D7CE):
        body = orjson.dumps({"id": in_block(PAN + "7", zero), "n": in_block("7" + PAN, zero)})
        for size in (1, 3, 4096):
            assert streamed(body, size) == (body, 0)
