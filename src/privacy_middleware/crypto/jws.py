"""Ed25519 compact JWS (`EdDSA`, RFC 8037) for the receipts people keep: one signer, one verifier
and one key-id scheme, shared by consent receipts and erasure receipts.

Signing and verification are PyJWT's; this module only fixes the choices: the algorithm, the `typ`
header each kind of receipt carries, and `kid` = base64url(SHA-256(raw public key)[:16]).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import PrivacyError

ALGORITHM = "EdDSA"


def key_id(public_key: Ed25519PublicKey) -> str:
    """A stable id for a signing key: the first 16 bytes of SHA-256 over the raw public key, base64url."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:16]).rstrip(b"=").decode()


class JwsSigner:
    """Signs claims as a compact JWS of one `typ` (e.g. `consent-receipt+jwt`)."""

    def __init__(self, private_key: Ed25519PrivateKey, typ: str) -> None:
        self._private_key = private_key
        self.typ = typ
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": self.typ})

    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def verify(token: str, public_key: Ed25519PublicKey, *, typ: str, require: list[str], what: str) -> dict[str, Any]:
    """The claims when `token` is a genuine JWS of this `typ`; `PrivacyError('receipt_invalid')` otherwise."""
    try:
        if jwt.get_unverified_header(token).get("typ") != typ:
            raise PrivacyError("receipt_invalid", f"not a {what}", 400)
        claims: dict[str, Any] = jwt.decode(token, public_key, algorithms=[ALGORITHM], options={"require": require})
    except jwt.PyJWTError:
        raise PrivacyError("receipt_invalid", f"the {what} signature does not verify", 400) from None
    return claims
