"""Signed erasure receipts: a compact JWS (Ed25519, EdDSA) the subject keeps as proof of what was
deleted, what was anonymised and what was kept and why. Anyone with the public key can verify it."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import PrivacyError

RECEIPT_TYPE = "erasure-receipt+jwt"


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:12]).decode().rstrip("=")


class ErasureReceiptSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._private_key, algorithm="EdDSA", headers={"kid": self.kid, "typ": RECEIPT_TYPE})

    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def verify_erasure_receipt(token: str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The receipt's claims when the signature is genuine; `PrivacyError('receipt_invalid')` otherwise."""
    try:
        if jwt.get_unverified_header(token).get("typ") != RECEIPT_TYPE:
            raise PrivacyError("receipt_invalid", "not an erasure receipt", 400)
        claims: dict[str, Any] = jwt.decode(
            token, public_key, algorithms=["EdDSA"], options={"require": ["iat", "jti", "sub"]}
        )
    except jwt.PyJWTError:
        raise PrivacyError("receipt_invalid", "the erasure receipt signature does not verify", 400) from None
    return claims
