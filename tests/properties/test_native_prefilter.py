"""The native card-number prefilter (`_native.digit_run`) answers exactly what the pure-Python scan
answers (`card_sentinel._digit_run_py`: the run of 13 zeros in the translated copy, and whether the
body is plain ASCII), so `may_hold_card_number` decides the same with or without the extension, for
ASCII card numbers, numbers split by the bytes the fold drops, and Unicode digits."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy_middleware.asgi import headers as asgi_headers
from privacy_middleware.fields import card_sentinel, native
from support.native import needs_native

pytestmark = needs_native

# Bytes that decide a run (digits, the dropped separators) and bytes that break one, with a few
# that are not ASCII (UTF-8 of full-width and Arabic-Indic digits, a lone high byte).
PIECES = st.sampled_from(
    [
        b"0",
        b"4",
        b"9",
        b" ",
        b"-",
        b"_",
        b".",
        b"\\",
        b"u",
        b"U",
        b"a",
        b"/",
        b":",
        b'"',
        b"\x00",
        b"\x7f",
        b"\x80",
        b"\xff",
        "\uff14".encode(),  # full-width 4
        "\u0664".encode(),  # Arabic-Indic 4
        "\u00e9".encode(),
        b"\\u0034",
        b"4242424242424242",
        b"424242424242",
    ]
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.lists(PIECES, max_size=60).map(b"".join),
    st.lists(st.sampled_from([b"1", b"2", b" ", b"-", b"x", b"\xc3\xa9"]), min_size=10, max_size=40).map(b"".join),
)


def python_answer(body: bytes) -> bool:
    found = card_sentinel._digit_run_py(body)
    return found == 1 or (found == 2 and card_sentinel._may_hold_as_read(body))


@settings(max_examples=1500, deadline=None)
@given(bodies)
def test_native_digit_run_answers_as_the_python_scan(body: bytes) -> None:
    assert native.digit_run is not None
    assert native.digit_run(body) == card_sentinel._digit_run_py(body)
    assert card_sentinel.may_hold_card_number(body) == python_answer(body)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=13, max_value=19), st.sampled_from([0x30, 0xFF10, 0x0660, 0x0966]))
def test_a_card_length_run_in_any_decimal_digits_is_caught(length: int, zero: int) -> None:
    # ASCII, full-width, Arabic-Indic or Devanagari digits
    number = "".join(chr(zero + (7 * i + 3) % 10) for i in range(length))
    body = orjson.dumps({"card": number, "note": "thé"})
    assert card_sentinel.may_hold_card_number(body)
    assert python_answer(body)


def test_the_scan_stops_short_of_a_twelve_digit_run() -> None:
    assert native.digit_run is not None
    assert native.digit_run(b'{"n":"4242-4242-4242"}') == 0
    assert native.digit_run(b'{"n":"4242-4242-4242-4"}') == 1
    assert native.digit_run(b'{"n":"4242 4242 4242","t":"\xc3\xa9"}') == 2
    assert native.digit_run(memoryview(b"4242424242424")) == 1


NAMES = [b"content-type", b"content-encoding", b"content-length", b"transfer-encoding", b"cookie", b"x"]
header_names = st.one_of(
    st.sampled_from(NAMES).map(lambda n: bytes(c - 32 if 97 <= c <= 122 and c % 3 == 0 else c for c in n)),
    st.sampled_from([*NAMES, b"Content-Type", b"CONTENT-TYPE", b"content-type ", b"c\xf6ntent-type", b""]),
    st.binary(max_size=20),
)
header_lists = st.lists(st.tuples(header_names, st.binary(max_size=8)), max_size=12)


@settings(max_examples=1500, deadline=None)
@given(header_lists, st.lists(st.sampled_from(NAMES), min_size=1, max_size=5).map(tuple))
def test_native_first_values_answers_as_the_python_scan(
    headers: list[tuple[bytes, bytes]], names: tuple[bytes, ...]
) -> None:
    assert native.first_values is not None
    assert native.first_values(headers, names) == asgi_headers._first_values_py(headers, names)
    assert asgi_headers.first_values(headers, names) == asgi_headers._first_values_py(headers, names)


def test_first_values_leaves_what_it_does_not_read_exactly_to_the_python_scan() -> None:
    assert native.first_values is not None
    listed = [[b"Content-Type", b"application/json"]]  # a list, not a tuple: not read in C
    assert native.first_values(listed, (b"content-type",)) is None
    assert asgi_headers.first_values(listed, (b"content-type",)) == (b"application/json",)
    assert native.first_values([(b"content-type", "text")], (b"content-type",)) is None
    assert native.first_values([], tuple(NAMES * 2)) is None  # more names than the C scan takes
    one_shot = iter([[b"Content-Type", b"application/json"]])  # ASGI allows any iterable
    assert native.first_values(one_shot, (b"content-type",)) is None  # declined, not consumed
    assert asgi_headers.first_values(one_shot, (b"content-type",)) == (b"application/json",)
    assert asgi_headers.first_values([(b"X", b"1")], tuple(NAMES * 2)) == (None,) * 5 + (b"1",) + (None,) * 5 + (None,)


# JSON texts written by hand, so that an object may hold a key twice (and keys differ only by an
# escape or by case), nested past the strict reader's limit or not.
KEYS = st.sampled_from(['"a"', '"b"', '"A"', '"\\u0061"', '"\\u00e9"', '"\\u00e9"'.replace("\\u00e9", "\u00e9"), '""'])
SCALARS = st.sampled_from(["1", "-0.5", "1e3", "true", "null", '"x"', '"\\n"', '"\\u00e9"', "12345678901234567890"])


def _text(node: object) -> str:
    if isinstance(node, tuple):
        return "{" + ",".join(f"{key}:{_text(value)}" for key, value in node[0]) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(_text(item) for item in node) + "]"
    return str(node)


json_texts = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.tuples(KEYS, inner), max_size=4).map(lambda pairs: (pairs,)),
    ),
    max_leaves=40,
).map(_text)


@settings(max_examples=1500, deadline=None)
@given(json_texts, st.integers(min_value=1, max_value=70))
def test_the_native_strict_verdict_clears_only_bodies_the_python_checks_clear(text: str, limit: int) -> None:
    from privacy_middleware.asgi import strict_json

    body = f" {text}\n".encode()
    orjson.loads(body)  # every text drawn here is JSON
    assert native.strict_verdict is not None
    verdict = native.strict_verdict(body, limit)
    if verdict:
        assert strict_json._find_duplicate(body) is None
        assert strict_json.raw_depth(body) <= limit
    if limit > 64:
        assert verdict is False  # deeper limits are left to the Python checks


def test_the_native_strict_verdict_on_plain_bodies() -> None:
    assert native.strict_verdict is not None
    assert native.strict_verdict(b'{"a":1,"b":[1,2,{"c":null}]}', 32) is True
    assert native.strict_verdict(b'{"a":1,"a":2}', 32) is False
    assert native.strict_verdict(b"[[[[1]]]]", 4) is True
    assert native.strict_verdict(b"[[[[1]]]]", 3) is False
    assert native.strict_verdict(b'{"a":1} x', 32) is False
