"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note text format.

A checkpoint says "the log named <origin> had <size> leaves with this root at this time",
signed with Ed25519. The time rides in an extension line, so it is inside the signature.
Verification needs only the note text and a public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .events import format_time, parse_time

_SIG_PREFIX = "\u2014 "
_ED25519 = b"\x01"


class CheckpointFormatError(ValueError):
    """The note text is not a well-formed checkpoint."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    time: datetime
    note: str

    @property
    def body(self) -> str:
        return self.note.split("\n\n", 1)[0] + "\n"


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short stable name for a signing key (first 16 hex digits of SHA-256 of the raw key)."""
    return hashlib.sha256(raw_public_key(key)).hexdigest()[:16]


def key_hash(name: str, key: Ed25519PublicKey) -> bytes:
    """The signed-note key hint: SHA-256(name || LF || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + raw_public_key(key)).digest()[:4]


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise CheckpointFormatError("public key is not a PEM Ed25519 key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointFormatError("public key is not an Ed25519 key")
    return key


def sign_checkpoint(private_key: Ed25519PrivateKey, origin: str, size: int, root: bytes, when: datetime) -> Checkpoint:
    if not origin or "\n" in origin or " " in origin:
        raise ValueError("origin must be a single word without spaces")
    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\ntime {format_time(when)}\n"
    signature = private_key.sign(body.encode())
    public = private_key.public_key()
    blob = base64.b64encode(key_hash(origin, public) + signature).decode()
    note = f"{body}\n{_SIG_PREFIX}{origin} {blob}\n"
    return Checkpoint(origin=origin, size=size, root=root, time=when, note=note)


def parse_checkpoint(note: str) -> tuple[Checkpoint, list[tuple[str, bytes, bytes]]]:
    """Split a note into its checkpoint and its (name, key hash, signature) lines."""
    if "\n\n" not in note or not note.endswith("\n"):
        raise CheckpointFormatError("checkpoint note has no signature block")
    body, sigblock = note.split("\n\n", 1)
    lines = body.split("\n")
    if len(lines) < 3:
        raise CheckpointFormatError("checkpoint body needs origin, size and root")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointFormatError("checkpoint size is not a decimal number")
    root = _strict_b64(root_text, "checkpoint root")
    if len(root) != 32:
        raise CheckpointFormatError("checkpoint root is not a SHA-256 hash")
    when = None
    for extra in lines[3:]:
        if extra.startswith("time "):
            try:
                when = parse_time(extra[5:])
            except ValueError as exc:
                raise CheckpointFormatError("checkpoint time is malformed") from exc
    if when is None:
        raise CheckpointFormatError("checkpoint has no time line")
    signatures = []
    for line in sigblock.rstrip("\n").split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise CheckpointFormatError("signature line does not start with an em dash")
        try:
            name, blob_text = line[len(_SIG_PREFIX) :].split(" ")
        except ValueError as exc:
            raise CheckpointFormatError("signature line is malformed") from exc
        blob = _strict_b64(blob_text, "signature")
        if len(blob) < 5:
            raise CheckpointFormatError("signature line is too short")
        signatures.append((name, blob[:4], blob[4:]))
    checkpoint = Checkpoint(origin=origin, size=int(size_text), root=root, time=when, note=note)
    return checkpoint, signatures


def _strict_b64(text: str, what: str) -> bytes:
    """Canonical base64 only, so one signature has exactly one spelling (no malleability)."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointFormatError(f"{what} is not base64") from exc
    if base64.b64encode(data).decode() != text:
        raise CheckpointFormatError(f"{what} is not canonical base64")
    return data


def verify_checkpoint(note: str, keys: list[Ed25519PublicKey]) -> Checkpoint | None:
    """The parsed checkpoint if one of `keys` signed it for its origin, else None."""
    checkpoint, signatures = parse_checkpoint(note)
    message = checkpoint.body.encode()
    for name, hint, signature in signatures:
        if name != checkpoint.origin:
            continue
        for key in keys:
            if hint != key_hash(name, key):
                continue
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return checkpoint
    return None
