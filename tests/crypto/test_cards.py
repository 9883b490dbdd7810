import pytest
from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.crypto import (
    CardBrand,
    CardCompanions,
    card_brand,
    is_sensitive_authentication_field,
    length_valid,
    luhn_valid,
    mask_pan,
    normalise_pan,
    validate_pan,
)
from privacy_middleware.errors import PrivacyError


def check_digit(payload: str) -> str:
    """Reference check digit computed the textbook way, independent of luhn_valid's loop."""
    digits = [int(c) for c in payload][::-1]
    total = sum(sum(divmod(d * 2, 10)) if i % 2 == 0 else d for i, d in enumerate(digits))
    return str((10 - total % 10) % 10)


@given(st.text(alphabet="0123456789", min_size=1, max_size=18))
def test_appending_the_check_digit_makes_a_valid_number(payload: str) -> None:
    assert luhn_valid(payload + check_digit(payload))


@given(st.text(alphabet="0123456789", min_size=1, max_size=18), st.integers(1, 9))
def test_any_other_last_digit_is_invalid(payload: str, shift: int) -> None:
    wrong = str((int(check_digit(payload)) + shift) % 10)
    assert not luhn_valid(payload + wrong)


@given(st.text(alphabet="0123456789", min_size=2, max_size=18), st.data())
def test_a_single_digit_typo_is_always_caught(payload: str, data: st.DataObject) -> None:
    number = payload + check_digit(payload)
    position = data.draw(st.integers(0, len(number) - 1))
    replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    assert not luhn_valid(number[:position] + replacement + number[position + 1 :])


@pytest.mark.parametrize("value", ["", "abc", "4111-1111", "٤١١١", "12 34"])
def test_luhn_rejects_non_ascii_digit_input(value: str) -> None:
    assert not luhn_valid(value)


@pytest.mark.parametrize(
    ("pan", "brand"),
    [
        ("4111111111111111", CardBrand.VISA),
        ("4222222222222", CardBrand.VISA),
        ("5555555555554444", CardBrand.MASTERCARD),
        ("2221000000000009", CardBrand.MASTERCARD),
        ("2720990000000007", CardBrand.MASTERCARD),
        ("378282246310005", CardBrand.AMEX),
        ("6011111111111117", CardBrand.DISCOVER),
        ("6445644564456445", CardBrand.DISCOVER),
        ("3530111333300000", CardBrand.JCB),
        ("6200000000000005", CardBrand.UNIONPAY),
        ("30569309025904", CardBrand.DINERS),
        ("36227206271667", CardBrand.DINERS),
        ("6759649826438453", CardBrand.MAESTRO),
        ("5018000000000009", CardBrand.MAESTRO),
    ],
)
def test_published_test_cards_have_the_right_brand_and_validate(pan: str, brand: CardBrand) -> None:
    assert card_brand(pan) is brand
    assert validate_pan(pan) == pan


@pytest.mark.parametrize("pan", ["2220990000000000", "2721000000000000", "1234567890123452"])
def test_numbers_outside_scheme_ranges_have_no_brand(pan: str) -> None:
    assert card_brand(pan) is None


def test_length_is_checked_per_brand() -> None:
    assert not length_valid("37828224631000")  # 14-digit Amex
    assert not length_valid("55555555555544")  # 14-digit Mastercard
    assert length_valid("4111111111111111111")  # 19-digit Visa
    with pytest.raises(PrivacyError) as info:
        validate_pan("3782 8224 6310 00")
    assert info.value.code == "invalid_card_number"


def test_normalise_accepts_spaces_and_dashes_only() -> None:
    assert normalise_pan(" 4111-1111 1111-1111 ") == "4111111111111111"
    for bad in ("4111.1111.1111.1111", "4111x111111111111", "41111", "٤١١١١١١١١١١١١١١١"):
        with pytest.raises(PrivacyError) as info:
            normalise_pan(bad)
        assert bad not in info.value.message


def test_bad_check_digit_is_refused_without_echoing_the_number() -> None:
    with pytest.raises(PrivacyError) as info:
        validate_pan("4111111111111112")
    assert "4111" not in info.value.message


def test_companions_keep_last4_brand_and_expiry_but_no_cvv() -> None:
    twins = CardCompanions.from_pan("4111 1111 1111 1111", exp_month=12, exp_year=29)
    assert twins == CardCompanions("1111", CardBrand.VISA, 12, 2029)
    assert not any("cvv" in field or "cvc" in field for field in CardCompanions.__dataclass_fields__)
    with pytest.raises(PrivacyError):
        CardCompanions.from_pan("4111111111111111", exp_month=13)


def test_mask_shows_last_four_only() -> None:
    masked = mask_pan("4111111111111111")
    assert masked.endswith("1111") and "4111" not in masked[:-4] and len(masked) == 16


@pytest.mark.parametrize("name", ["cvv", "CVC2", "card_cvv", "securityCode", "track2", "cid"])
def test_sensitive_authentication_fields_are_recognised(name: str) -> None:
    assert is_sensitive_authentication_field(name)


@pytest.mark.parametrize("name", ["number", "last4", "brand", "exp_month", "cardholder"])
def test_ordinary_card_fields_are_not_sad(name: str) -> None:
    assert not is_sensitive_authentication_field(name)


# The zero of some decimal-digit blocks (Unicode Nd): Arabic-Indic, extended Arabic-Indic, Devanagari,
# Bengali, Thai, full-width. A shop's parser may read any of them as digits (Python's int() does).
DIGIT_ZEROS = [0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0xFF10]


@given(
    st.sampled_from(["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]),
    st.sampled_from(DIGIT_ZEROS),
    st.sampled_from(["", " ", "-"]),
)
def test_a_card_number_in_any_decimal_digits_is_found_as_in_ascii(pan: str, zero: int, separator: str) -> None:
    from privacy_middleware.crypto.cards import ascii_digits
    from privacy_middleware.fields.card_sentinel import find_card_data, may_hold_card_number, pans_in
    from privacy_middleware.fields.detectors import detect

    spelled = pan.translate({ord("0") + d: zero + d for d in range(10)})
    grouped = separator.join(spelled[i : i + 4] for i in range(0, len(spelled), 4))
    text = f"note {grouped} thanks"
    assert ascii_digits(spelled) == pan
    assert [m.group() for m in pans_in(text)] == [grouped]
    assert [f.kind for f in detect(text, ["card_number"])] == ["card_number"]
    assert may_hold_card_number(('{"memo": "' + text + '"}').encode())
    assert list(find_card_data({"memo": text})) == [("$.memo", "card_number")]


# The check and the validation as they were written before their shortcuts (a reversed copy for the
# check digit, both regular expressions and a walk over the scheme rules for every number): the
# shortcuts must answer as these do on any input.
def reference_luhn(digits: str) -> bool:
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    reverse = digits[::-1].encode("ascii")
    doubled = bytes.maketrans(b"0123456789", b"0246813579")
    return (sum(reverse[0::2]) + sum(reverse[1::2].translate(doubled)) - 48 * len(reverse)) % 10 == 0


def reference_validate(text: str) -> tuple[str, CardBrand | None] | str:
    """The digits and brand, or the message of the refusal."""
    from privacy_middleware.crypto.cards import _RULES, scan_brand

    try:
        pan = normalise_pan(text)
    except PrivacyError as error:
        return error.message
    brand = scan_brand(pan)
    lengths = next((lengths for rule, _ranges, lengths in _RULES if rule is brand), frozenset(range(12, 20)))
    if len(pan) not in lengths:
        return "the card number has the wrong length for its scheme"
    if not reference_luhn(pan):
        return "the card number fails the check digit test"
    return pan, brand


def with_check_digit(payload: str) -> str:
    return payload + check_digit(payload) if payload else payload


card_like = st.one_of(
    st.text(alphabet="0123456789", max_size=24),
    st.text(alphabet="0123456789", min_size=11, max_size=18).map(with_check_digit),
    st.sampled_from(["4", "5", "34", "37", "36", "3528", "6011", "62", "6759", "2221", "81"]).flatmap(
        lambda prefix: st.text(alphabet="0123456789", min_size=10, max_size=17).map(
            lambda rest: with_check_digit(prefix + rest)
        )
    ),
    st.text(alphabet="0123456789 -\t\n.x\u0660\u0661\uff11\u00b2", max_size=26),
    st.text(max_size=8),
)


@given(card_like)
def test_the_check_digit_test_answers_as_the_reference(text: str) -> None:
    assert luhn_valid(text) is reference_luhn(text)


@given(card_like, st.sampled_from(["", " ", "  ", "-"]), st.sampled_from(["", " ", "\t"]))
def test_validation_answers_as_the_reference(text: str, inner: str, outer: str) -> None:
    from privacy_middleware.crypto.cards import check_pan

    spelled = outer + inner.join(text[i : i + 4] for i in range(0, len(text), 4)) + outer
    expected = reference_validate(spelled)
    try:
        answer: tuple[str, CardBrand | None] | str = check_pan(spelled)
    except PrivacyError as error:
        assert error.code == "invalid_card_number"
        answer = error.message
    assert answer == expected
    if isinstance(expected, tuple):
        assert validate_pan(spelled) == expected[0]
        assert length_valid(expected[0]) and length_valid(expected[0], expected[1])
