"""Side records: raw personal values sealed with AES-256-GCM, referenced by salted commitments.

The leaf keeps `{ref, commit}` where commit = HMAC-SHA256(salt, kind || 0x00 || value) and the
random 16-byte salt lives only in the side record. Erasing the side record (retention) leaves
the commitment unverifiable and unguessable (no brute force over the IPv4 space without the
salt), while the leaf and therefore the Merkle log stay intact.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .events import AuditEvent, to_micros

SEALED_KINDS = frozenset({"ip", "username", "user_agent"})


@dataclass(frozen=True, slots=True)
class SideRecord:
    ref: str
    kind: str
    salt: bytes
    blob: bytes  # nonce (12) || ciphertext || tag


@dataclass(frozen=True, slots=True)
class SealedEvent:
    """An event ready for the log and safe to spool: no personal value in clear."""

    doc: dict[str, Any]
    side: tuple[SideRecord, ...]

    @property
    def uid(self) -> str:
        return str(self.doc["uid"])

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    def to_json(self) -> dict[str, Any]:
        return {
            "doc": self.doc,
            "side": [
                {
                    "ref": r.ref,
                    "kind": r.kind,
                    "salt": base64.b64encode(r.salt).decode(),
                    "blob": base64.b64encode(r.blob).decode(),
                }
                for r in self.side
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> SealedEvent:
        """Rebuild a spooled event; ValueError when the record is not one we wrote."""
        if not isinstance(data, dict) or not isinstance(data.get("doc"), dict):
            raise ValueError("spool record has no event document")
        doc = data["doc"]
        for key in ("uid", "kind", "time", "class_uid", "time_us"):
            if key not in doc:
                raise ValueError(f"spool record lacks {key}")
        side = []
        for item in data.get("side", []):
            try:
                side.append(
                    SideRecord(
                        ref=str(item["ref"]),
                        kind=str(item["kind"]),
                        salt=base64.b64decode(item["salt"], validate=True),
                        blob=base64.b64decode(item["blob"], validate=True),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError("spool record has a malformed side record") from exc
        return cls(doc=doc, side=tuple(side))


def commitment(salt: bytes, kind: str, value: str) -> str:
    return hmac.new(salt, kind.encode() + b"\x00" + value.encode(), hashlib.sha256).hexdigest()


class SideRecordSealer:
    """Seals events with the integrator's 32-byte side-record key."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise ValueError("the side-record key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SideRecordSealer(<key hidden>)"

    def seal(self, event: AuditEvent) -> SealedEvent:
        doc = event.document()
        doc["time_us"] = to_micros(event.time)
        refs: dict[str, dict[str, str]] = {}
        side = []
        for kind in sorted(event.personal):
            if kind not in SEALED_KINDS:
                raise ValueError("unknown personal value kind")
            value = event.personal[kind]
            ref = uuid.uuid4().hex
            salt = os.urandom(16)
            nonce = os.urandom(12)
            blob = nonce + self._aead.encrypt(nonce, value.encode(), _aad(ref, kind))
            side.append(SideRecord(ref=ref, kind=kind, salt=salt, blob=blob))
            refs[kind] = {"ref": ref, "commit": commitment(salt, kind, value)}
        doc["refs"] = refs
        return SealedEvent(doc=doc, side=tuple(side))

    def open(self, record: SideRecord) -> str:
        """Decrypt a side record; a wrong key or a tampered record is an error, never garbage."""
        try:
            value = self._aead.decrypt(record.blob[:12], record.blob[12:], _aad(record.ref, record.kind))
        except InvalidTag:
            raise ValueError("side record does not decrypt with this key") from None
        return value.decode()


def _aad(ref: str, kind: str) -> bytes:
    return f"privacy-audit-side/v1|{ref}|{kind}".encode()
