"""Batch seals: one Ed25519 signature per appended batch, not one per event.

Every append (one transaction, one turn of the sequencer) writes a seal: a compact JWS (EdDSA,
`crypto/jws.py`) over the batch's place in the log (`first`, `count`), the RFC 6962 root of its
leaves (`batch_root`) and the head of the whole tree after it (`size`, `root`). The batch root lets
one event be proved from its batch alone (`proofs.py`); the tree root chains every batch to all the
leaves before it, so a verifier that recomputes the tree checks order, gaps and content at once.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..crypto.jws import ALGORITHM, JwsSigner, key_id

SEAL_TYP = "audit-batch+jwt"
_CLAIMS = ("v", "origin", "chain", "first", "count", "batch_root", "size", "root", "time_us")


class SealFormatError(ValueError):
    """A seal that is not a well-formed batch seal (as opposed to one with a bad signature)."""


@dataclass(frozen=True, slots=True)
class BatchSeal:
    origin: str
    chain: str
    first: int
    count: int
    batch_root: bytes
    size: int
    root: bytes
    time_us: int
    token: str

    @property
    def end(self) -> int:
        return self.first + self.count


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise SealFormatError(f"seal {what} is not a string")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise SealFormatError(f"seal {what} is not base64url") from exc
    if len(data) != 32 or _b64(data) != text:
        raise SealFormatError(f"seal {what} is not a canonical SHA-256 hash")
    return data


class BatchSigner:
    """Signs batch seals with the log's Ed25519 key (one JWS per batch)."""

    def __init__(self, private_key: Ed25519PrivateKey, origin: str) -> None:
        self._jws = JwsSigner(private_key, SEAL_TYP)
        self.origin = origin

    def seal(
        self, chain: str, first: int, count: int, batch_root: bytes, size: int, root: bytes, time_us: int
    ) -> BatchSeal:
        claims = {
            "v": 1,
            "origin": self.origin,
            "chain": chain,
            "first": first,
            "count": count,
            "batch_root": _b64(batch_root),
            "size": size,
            "root": _b64(root),
            "time_us": time_us,
        }
        token = self._jws.sign(claims)
        return BatchSeal(self.origin, chain, first, count, batch_root, size, root, time_us, token)


class SealVerifier:
    """Checks seals against trusted keys, picked by the JWS `kid`: one Ed25519 check per batch.

    A verifier checks thousands of seals, so each token is split and decoded once (`read`) and its
    signature checked over the JWS signing input with `cryptography`'s Ed25519, as RFC 7515 defines
    it for compact tokens; `jwt.decode` accepts the same tokens (the tests hold both to it)."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            self.trust(key)

    def trust(self, key: Ed25519PublicKey) -> None:
        self._keys[key_id(key)] = key

    def check(self, read: ReadSeal) -> bool:
        key = self._keys.get(read.kid)
        if key is None:
            return False
        try:
            key.verify(read.signature, read.signing_input)
        except InvalidSignature:
            return False
        return True

    def verify(self, token: str) -> BatchSeal | None:
        """The seal if a trusted key signed it; None for a bad or unknown signature.

        SealFormatError when the token is not a batch seal at all."""
        read = read_seal(token)
        return read.seal if self.check(read) else None


@dataclass(frozen=True, slots=True)
class ReadSeal:
    seal: BatchSeal
    kid: str
    signing_input: bytes
    signature: bytes


def _segment(text: str, what: str) -> bytes:
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise SealFormatError(f"seal {what} is not base64url") from exc
    if _b64(data) != text:
        raise SealFormatError(f"seal {what} is not canonical base64url")
    return data


def read_seal(token: str) -> ReadSeal:
    """Split and decode a seal once (claims, key id, signing input); no trust yet."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise SealFormatError("seal is not a compact JWS")
    try:
        header = orjson.loads(_segment(parts[0], "header"))
        claims = orjson.loads(_segment(parts[1], "payload"))
    except orjson.JSONDecodeError as exc:
        raise SealFormatError("seal header or payload is not JSON") from exc
    if not isinstance(header, dict) or header.get("typ") != SEAL_TYP or header.get("alg") != ALGORITHM:
        raise SealFormatError("seal is not an audit batch seal")
    signature = _segment(parts[2], "signature")
    signing_input = (parts[0] + "." + parts[1]).encode("ascii")
    return ReadSeal(parse_claims(claims, token), str(header.get("kid")), signing_input, signature)


def parse_claims(claims: Any, token: str) -> BatchSeal:
    if not isinstance(claims, dict) or any(name not in claims for name in _CLAIMS) or claims["v"] != 1:
        raise SealFormatError("seal lacks a claim")
    numbers = [claims[name] for name in ("first", "count", "size", "time_us")]
    if any(type(n) is not int or n < 0 for n in numbers) or claims["count"] < 1:
        raise SealFormatError("seal positions are not non-negative integers")
    if claims["first"] + claims["count"] != claims["size"]:
        raise SealFormatError("seal size does not follow its batch")
    if not isinstance(claims["origin"], str) or not isinstance(claims["chain"], str):
        raise SealFormatError("seal origin or chain is not a string")
    return BatchSeal(
        origin=claims["origin"],
        chain=claims["chain"],
        first=claims["first"],
        count=claims["count"],
        batch_root=_unb64(claims["batch_root"], "batch root"),
        size=claims["size"],
        root=_unb64(claims["root"], "root"),
        time_us=claims["time_us"],
        token=token,
    )


def unverified(token: str) -> BatchSeal:
    """The claims of a seal without checking its signature (for reports and proofs, never for trust)."""
    return read_seal(token).seal
