"""Self-describing text envelopes for field values.

    pe1.<kid>.<b64url(nonce[12] | ciphertext | tag[16])>              AES-256-GCM, randomised
    pd1.<kid>.<b64url(siv[16] | ciphertext)>                           AES-SIV, deterministic

`kid` (11 characters, 8 random bytes) names the subject key that sealed the value. The
associated data binds format, kid, tenant, category and subject; it is rebuilt from the
caller's context at decrypt time and never stored, so a value copied into another field or
another person's record fails to open. Parsing is strict: a value that claims to be an
envelope and is malformed is an error, never "plaintext after all".
"""

from __future__ import annotations

import os
import re
from binascii import b2a_base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import PrivacyError
from .encoding import b64url_decode, b64url_encode, length_prefixed
from .errors import DecryptionFailed

# base64 to base64url (`encoding.b64url_encode`, inlined where a request seals its fields; "=" deleted)
_URLSAFE = bytes.maketrans(b"+/", b"-_")

RANDOMISED = "pe1"
DETERMINISTIC = "pd1"
KINDS = (RANDOMISED, DETERMINISTIC)

KID_BYTES = 8
SUBJECT_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16

# Per category sealed: the pe1 associated data and the category key's AES-GCM encrypt call.
SealingContexts = tuple[tuple[bytes, Callable[[bytes, bytes, bytes | None], bytes]], ...]

_KID = re.compile(r"[A-Za-z0-9_-]{11}")
_SHA256 = hashes.SHA256()


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope: its format, the subject-key handle and the raw body."""

    kind: str
    kid: str
    body: bytes


def new_kid() -> str:
    """A fresh opaque key handle (not derived from the key or from the subject)."""
    return b64url_encode(os.urandom(KID_BYTES))


def is_kid(text: str) -> bool:
    return bool(_KID.fullmatch(text))


def is_envelope(value: object) -> bool:
    """True for anything that claims to be one of our envelopes (valid or not).

    The caller uses this to avoid encrypting twice and to spot legacy plaintext; a claimed
    envelope that is malformed is rejected later by `parse_envelope`, never passed through.
    """
    return isinstance(value, str) and value[:4] in ("pe1.", "pd1.")


def parse_envelope(value: str) -> Envelope:
    """Split and validate an envelope; any deviation raises DecryptionFailed."""
    parts = value.split(".")
    if len(parts) != 3 or parts[0] not in KINDS or not _KID.fullmatch(parts[1]):
        raise DecryptionFailed("the value is not a well-formed envelope")
    kind, kid, body_text = parts
    try:
        body = b64url_decode(body_text)
    except ValueError:
        raise DecryptionFailed("the value is not a well-formed envelope") from None
    minimum = NONCE_BYTES + TAG_BYTES if kind == RANDOMISED else TAG_BYTES
    if len(body) < minimum:
        raise DecryptionFailed("the value is not a well-formed envelope")
    return Envelope(kind, kid, body)


def associated_data(kind: str, kid: str, tenant: str, category: str, subject: str) -> bytes:
    """The canonical context an envelope is bound to (never stored)."""
    return length_prefixed(kind, kid, tenant, category, subject)


def _utf8(value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise PrivacyError("invalid_value", "the value is not valid Unicode text", 400) from None


class SubjectCipher:
    """Seals and opens envelopes under one subject key; per-category derivation inputs are cached."""

    __slots__ = ("_aad", "_contexts", "_deterministic", "_key", "_prefix", "_randomised", "kid")

    _MEMO = 64  # categories remembered per subject; a policy names far fewer

    def __init__(self, key: bytes, kid: str) -> None:
        if len(key) != SUBJECT_KEY_BYTES:
            raise ValueError("a subject key is 32 bytes")
        if not _KID.fullmatch(kid):  # an envelope names it verbatim (and `seal_values` relies on its alphabet)
            raise ValueError("a kid is 11 base64url characters")
        self._key = key
        self.kid = kid
        self._deterministic: dict[tuple[str, str], AESSIV] = {}
        self._randomised: dict[str, AESGCM] = {}
        self._aad: dict[tuple[str, str, str, str], bytes] = {}
        self._contexts: dict[tuple[str, str, tuple[str, ...]], SealingContexts] = {}
        self._prefix = f"{RANDOMISED}.{kid}.".encode("ascii")

    def _associated_data(self, kind: str, tenant: str, category: str, subject: str) -> bytes:
        memo = (kind, tenant, category, subject)
        aad = self._aad.get(memo)
        if aad is None:
            aad = associated_data(kind, self.kid, tenant, category, subject)
            if len(self._aad) < self._MEMO:
                self._aad[memo] = aad
        return aad

    def _category_cipher(self, category: str) -> AESGCM:
        """One AES-256-GCM key per subject and category, derived once and kept with the subject key.

        Random 96-bit nonces are safe for 2^32 messages per key (NIST SP 800-38D §8.3); a key that
        serves one person's values of one category never comes near that.
        """
        cipher = self._randomised.get(category)
        if cipher is None:
            cipher = AESGCM(HKDF(_SHA256, 32, None, b"pe1" + length_prefixed(category)).derive(self._key))
            if len(self._randomised) < self._MEMO:
                self._randomised[category] = cipher
        return cipher

    def _siv(self, tenant: str, category: str) -> AESSIV:
        cipher = self._deterministic.get((tenant, category))
        if cipher is None:
            info = b"pd1" + length_prefixed(tenant, category)
            cipher = AESSIV(HKDF(_SHA256, 64, None, info).derive(self._key))
            if len(self._deterministic) < self._MEMO:
                self._deterministic[(tenant, category)] = cipher
        return cipher

    def seal(self, value: str, *, tenant: str, category: str, subject: str) -> str:
        """pe1: AES-256-GCM under the subject's key for this category, with a random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        aad = self._associated_data(RANDOMISED, tenant, category, subject)
        sealed = self._category_cipher(category).encrypt(nonce, _utf8(value), aad)
        return f"pe1.{self.kid}.{b64url_encode(nonce + sealed)}"

    def randomised_contexts(self, tenant: str, subject: str, categories: tuple[str, ...]) -> SealingContexts:
        """Per category of `categories`, in order: the pe1 associated data for this tenant, category and
        subject (`associated_data`, the same binding `seal` uses) and the category key's encrypt call.
        Remembered per (tenant, subject, categories): a route seals the same categories on every request."""
        memo = (tenant, subject, categories)
        contexts = self._contexts.get(memo)
        if contexts is None:
            contexts = tuple(
                (self._associated_data(RANDOMISED, tenant, category, subject), self._category_cipher(category).encrypt)
                for category in categories
            )
            if len(self._contexts) < self._MEMO:
                self._contexts[memo] = contexts
        return contexts

    def seal_many(self, items: list[tuple[str, str]], *, tenant: str, subject: str) -> list[str]:
        """`seal` of each (value, category), in order, in one call (`seal_values`)."""
        contexts = self.randomised_contexts(tenant, subject, tuple([category for _, category in items]))
        return self.seal_values([value for value, _ in items], contexts)

    def seal_values(self, values: Sequence[str], contexts: SealingContexts) -> list[str]:
        """pe1 envelopes of `values`, each under its context from `randomised_contexts` (same length).

        The same envelopes as `seal` gives one by one: a fresh random 96-bit nonce per value (all of
        them from one `os.urandom` call), AES-256-GCM over the value's UTF-8 with the associated data
        binding format, kid, tenant, category and subject, `pe1.<kid>.<b64url(nonce | ciphertext | tag)>`.
        The base64 of every value is written in one buffer (each ends in the newline `b2a_base64`
        adds; base64 and the kid never contain one), made URL-safe and unpadded in one pass, and split."""
        count = len(values)
        if count != len(contexts):
            raise ValueError("one sealing context per value")
        if not count:
            return []
        nonces = os.urandom(NONCE_BYTES * count)
        encoded: list[bytes] = []
        at = 0
        try:
            for value, (aad, encrypt) in zip(values, contexts, strict=True):
                nonce = nonces[at : at + NONCE_BYTES]
                at += NONCE_BYTES
                encoded.append(b2a_base64(nonce + encrypt(nonce, value.encode("utf-8"), aad)))
        except UnicodeEncodeError:
            raise PrivacyError("invalid_value", "the value is not valid Unicode text", 400) from None
        prefix = self._prefix
        text = (prefix + prefix.join(encoded)).translate(_URLSAFE, b"=").decode("ascii")
        return text[:-1].split("\n")

    def seal_deterministic(self, value: str, *, tenant: str, category: str, subject: str) -> str:
        """pd1: equal values of one subject and category give equal envelopes (lookups)."""
        aad = self._associated_data(DETERMINISTIC, tenant, category, subject)
        sealed = self._siv(tenant, category).encrypt(_utf8(value), [aad])
        return f"pd1.{self.kid}.{b64url_encode(sealed)}"

    def open(self, envelope: Envelope, *, tenant: str, category: str, subject: str) -> str:
        if envelope.kid != self.kid:
            raise DecryptionFailed("the value was sealed under another key")
        aad = self._associated_data(envelope.kind, tenant, category, subject)
        body = envelope.body
        try:
            if envelope.kind == RANDOMISED:
                plain = self._category_cipher(category).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
            else:
                plain = self._siv(tenant, category).decrypt(body, [aad])
            return plain.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise DecryptionFailed("the value does not belong to this field and subject, or was altered") from None
