import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy_middleware.crypto import DecryptionFailed, is_envelope
from privacy_middleware.crypto.encoding import b64url_decode, b64url_encode, length_prefixed
from privacy_middleware.crypto.envelope import SubjectCipher, new_kid, parse_envelope

CONTEXT = {"tenant": "shop", "category": "user.financial.card.number", "subject": "cust-1"}


@pytest.fixture
def cipher() -> SubjectCipher:
    return SubjectCipher(os.urandom(32), new_kid())


def open_(cipher: SubjectCipher, token: str, **overrides: str) -> str:
    return cipher.open(parse_envelope(token), **{**CONTEXT, **overrides})


@settings(max_examples=150, deadline=None)
@given(value=st.text())
def test_randomised_envelope_round_trips_any_unicode(value: str) -> None:
    cipher = SubjectCipher(b"k" * 32, "AAAAAAAAAAA")
    token = cipher.seal(value, **CONTEXT)
    assert token.startswith("pe1.AAAAAAAAAAA.")
    assert is_envelope(token)
    assert open_(cipher, token) == value


@settings(max_examples=150, deadline=None)
@given(value=st.text())
def test_deterministic_envelope_round_trips_and_is_stable(value: str) -> None:
    cipher = SubjectCipher(b"k" * 32, "AAAAAAAAAAA")
    token = cipher.seal_deterministic(value, **CONTEXT)
    assert token.startswith("pd1.")
    assert token == cipher.seal_deterministic(value, **CONTEXT)
    assert open_(cipher, token) == value


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.tuples(st.text(), st.sampled_from(["user.contact.email", "user.financial.card.number"]))))
def test_fields_sealed_together_open_as_sealed_one_by_one(values: list[tuple[str, str]]) -> None:
    cipher = SubjectCipher(b"k" * 32, "AAAAAAAAAAA")
    tokens = cipher.seal_many(values, tenant="shop", subject="cust-1")
    assert len(tokens) == len(values)
    for token, (value, category) in zip(tokens, values, strict=True):
        assert token.startswith("pe1.AAAAAAAAAAA.")
        assert open_(cipher, token, category=category) == value
    nonces = [parse_envelope(token).body[:12] for token in tokens]
    assert len(set(nonces)) == len(nonces)  # each field its own nonce


def test_values_sealed_under_kept_contexts_open_and_a_short_context_list_is_refused(cipher: SubjectCipher) -> None:
    categories = ("user.contact.email", "user.financial.card.number", "user.contact.email")
    contexts = cipher.randomised_contexts("shop", "cust-1", categories)
    assert cipher.randomised_contexts("shop", "cust-1", categories) is contexts
    values = ["ada@example.com", "4111111111111111", "ada@example.com"]
    tokens = cipher.seal_values(values, contexts)
    assert tokens[0] != tokens[2]
    for token, value, category in zip(tokens, values, categories, strict=True):
        assert open_(cipher, token, category=category) == value
    with pytest.raises(DecryptionFailed):
        open_(cipher, tokens[0], subject="cust-2")
    with pytest.raises(ValueError):
        cipher.seal_values(values, contexts[:2])


def test_a_cipher_needs_a_kid_an_envelope_can_name() -> None:
    with pytest.raises(ValueError):
        SubjectCipher(b"k" * 32, "kid\n.1")


def test_randomised_envelopes_of_one_value_differ(cipher: SubjectCipher) -> None:
    assert cipher.seal("4111111111111111", **CONTEXT) != cipher.seal("4111111111111111", **CONTEXT)


def test_envelope_is_json_and_url_safe(cipher: SubjectCipher) -> None:
    token = cipher.seal('"quoted" \\ and / slashes ünïcödé', **CONTEXT)
    assert all(c.isalnum() or c in "._-" for c in token)


@pytest.mark.parametrize("kind", ["seal", "seal_deterministic"])
@pytest.mark.parametrize(
    "override",
    [{"subject": "cust-2"}, {"category": "user.contact.address.delivery"}, {"tenant": "other-shop"}],
    ids=["other-subject", "other-category", "other-tenant"],
)
def test_value_moved_to_another_subject_field_or_tenant_fails(
    cipher: SubjectCipher, kind: str, override: dict[str, str]
) -> None:
    token = getattr(cipher, kind)("4111111111111111", **CONTEXT)
    with pytest.raises(DecryptionFailed) as info:
        open_(cipher, token, **override)
    assert info.value.code == "decryption_failed"
    assert "4111" not in info.value.message


def test_boundary_shift_between_category_and_subject_fails(cipher: SubjectCipher) -> None:
    token = cipher.seal("v", tenant="shop", category="a.b", subject="c")
    with pytest.raises(DecryptionFailed):
        cipher.open(parse_envelope(token), tenant="shop", category="a", subject="b.c")


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_flipping_any_byte_of_the_body_is_detected(data: st.DataObject) -> None:
    cipher = SubjectCipher(b"k" * 32, "AAAAAAAAAAA")
    kind = data.draw(st.sampled_from(["seal", "seal_deterministic"]))
    token = getattr(cipher, kind)("4111111111111111", **CONTEXT)
    prefix, kid, body = token.split(".")
    raw = bytearray(b64url_decode(body))
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(DecryptionFailed):
        open_(cipher, f"{prefix}.{kid}.{b64url_encode(bytes(raw))}")


def test_swapping_the_kid_or_the_format_prefix_fails(cipher: SubjectCipher) -> None:
    token = cipher.seal("secret", **CONTEXT)
    _, kid, body = token.split(".")
    other = SubjectCipher(cipher._key, new_kid())
    with pytest.raises(DecryptionFailed):
        other.open(parse_envelope(f"pe1.{other.kid}.{body}"), **CONTEXT)
    with pytest.raises(DecryptionFailed):
        open_(cipher, f"pd1.{kid}.{body}")


def test_other_subject_key_cannot_open(cipher: SubjectCipher) -> None:
    token = cipher.seal("secret", **CONTEXT)
    stranger = SubjectCipher(os.urandom(32), cipher.kid)
    with pytest.raises(DecryptionFailed):
        open_(stranger, token)


@pytest.mark.parametrize(
    "value",
    [
        "pe1.",
        "pe1.AAAAAAAAAAA",
        "pe1.AAAAAAAAAAA.",
        "pe1.AAAAAAAAAAA.abc",
        "pe1.short.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pe1.AAAAAAAAAAA." + "A" * 60 + "=",
        "pe1.AAAAAAAAAAA." + "A" * 59 + "+",
        "pe1.AAAAAAAAAAA." + "A" * 60 + ".extra",
        "pd1.AAAAAAAAAAA." + "A" * 10,
        "pe1.AAAAAAAAAAB." + "A" * 58 + "B",  # non-canonical base64 in the kid and body
        "pe1.AAAAAAAAAAA.AAAA\nAAAA",
    ],
)
def test_malformed_envelopes_are_errors_not_plaintext(value: str) -> None:
    assert is_envelope(value)
    with pytest.raises(DecryptionFailed):
        parse_envelope(value)


@pytest.mark.parametrize("value", ["4111111111111111", "pe2.AAAAAAAAAAA.xyz", "PE1.x", "", "tok_x", "pe1", None, 42])
def test_anything_else_is_legacy_plaintext(value: object) -> None:
    assert not is_envelope(value)


def test_lone_surrogates_are_refused_without_echo(cipher: SubjectCipher) -> None:
    with pytest.raises(Exception) as info:
        cipher.seal("\ud800", **CONTEXT)
    assert getattr(info.value, "code", None) == "invalid_value"


@given(parts=st.lists(st.text(max_size=5), max_size=4), other=st.lists(st.text(max_size=5), max_size=4))
def test_length_prefixed_encoding_is_injective(parts: list[str], other: list[str]) -> None:
    if parts != other:
        assert length_prefixed(*parts) != length_prefixed(*other)


@given(st.binary(max_size=64))
def test_b64url_round_trip_and_canonical(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text
    assert b64url_decode(text) == data
