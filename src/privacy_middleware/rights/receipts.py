"""Signed erasure receipts: a compact JWS (Ed25519, EdDSA) the subject keeps as proof of what was
deleted, what was anonymised and what was kept and why. Anyone with the public key can verify it."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..crypto.jws import JwsSigner, key_id, verify

__all__ = ["RECEIPT_TYPE", "ErasureReceiptSigner", "key_id", "verify_erasure_receipt"]

RECEIPT_TYPE = "erasure-receipt+jwt"


class ErasureReceiptSigner(JwsSigner):
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        super().__init__(private_key, RECEIPT_TYPE)


def verify_erasure_receipt(token: str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The receipt's claims when the signature is genuine; `PrivacyError('receipt_invalid')` otherwise."""
    return verify(token, public_key, typ=RECEIPT_TYPE, require=["iat", "jti", "sub"], what="erasure receipt")
