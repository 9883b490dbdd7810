"""Side records: raw personal values sealed with AES-256-GCM, referenced by salted commitments.

The leaf keeps `{ref, kinds, commit}` with commit = HMAC-SHA256(salt, canonical JSON of the raw
values); the random 16-byte salt lives only in the event's side record. Erasing the side record
(retention) leaves the commitment unverifiable and unguessable (no brute force over the IPv4
space without the salt), while the leaf and therefore the Merkle log stay intact.
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .events import MAX_KIND, AuditEvent, to_micros

SEALED_KINDS = frozenset({"ip", "username", "user_agent"})
_MS_MASK = (1 << 48) - 1


class SideRecord(NamedTuple):
    """One per event: every raw value of that event, encrypted together, and the salt. (Named tuples
    here, not frozen dataclasses: as immutable, and built in about two thirds of the time.)"""

    ref: str
    salt: bytes
    blob: bytes  # nonce (12) || AES-256-GCM(JSON {kind: value}) || tag


class SealedEvent(NamedTuple):
    """An event ready for the log and safe to spool: no personal value in clear."""

    doc: dict[str, Any]
    side: SideRecord | None

    @property
    def uid(self) -> str:
        return str(self.doc["uid"])

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    def to_json(self) -> dict[str, Any]:
        side = self.side
        if side is None:
            return {"doc": self.doc}
        return {
            "doc": self.doc,
            "side": {
                "ref": side.ref,
                "salt": base64.b64encode(side.salt).decode(),
                "blob": base64.b64encode(side.blob).decode(),
            },
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
        # a record the store would refuse must not block the replay of everything after it
        if not (isinstance(doc["uid"], str) and len(doc["uid"]) <= 36):
            raise ValueError("spool record has a bad uid")
        if not (isinstance(doc["kind"], str) and 0 < len(doc["kind"]) <= MAX_KIND):
            raise ValueError("spool record has a bad kind")
        if type(doc["time_us"]) is not int or type(doc["class_uid"]) is not int:
            raise ValueError("spool record has a bad time or class")
        for key in ("subject", "principal"):
            value = doc.get(key)
            if value is not None and not (isinstance(value, str) and len(value) <= 200):
                raise ValueError(f"spool record has a bad {key}")
        item = data.get("side")
        if item is None:
            return cls(doc=doc, side=None)
        try:
            if not (isinstance(item["ref"], str) and len(item["ref"]) == 32):
                raise ValueError("bad side record reference")
            side = SideRecord(
                ref=item["ref"],
                salt=base64.b64decode(item["salt"], validate=True),
                blob=base64.b64decode(item["blob"], validate=True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("spool record has a malformed side record") from exc
        return cls(doc=doc, side=side)


def commitment(salt: bytes, values: Mapping[str, str]) -> str:
    """HMAC-SHA256 keyed by the record's random salt over the canonical JSON of the values."""
    return hmac.digest(salt, orjson.dumps(dict(values), option=orjson.OPT_SORT_KEYS), "sha256").hex()


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
        personal = event.personal
        if not personal:
            doc["refs"] = {}
            return SealedEvent(doc=doc, side=None)
        if not SEALED_KINDS.issuperset(personal):
            raise ValueError("unknown personal value kind")
        random = os.urandom(38)
        # The reference leads with the event's millisecond (what the leaf's time says), then 80
        # random bits: side records are inserted in about key order, at the end of their primary-key
        # index, instead of at random places that a large table no longer keeps in cache.
        ref = ((doc["time_us"] // 1000 & _MS_MASK).to_bytes(6, "big") + random[:10]).hex()
        salt, nonce = random[10:26], random[26:]
        plain = orjson.dumps(dict(personal), option=orjson.OPT_SORT_KEYS)
        blob = nonce + self._aead.encrypt(nonce, plain, _aad(ref))
        doc["refs"] = {
            "ref": ref,
            "kinds": sorted(personal),
            "commit": hmac.digest(salt, plain, "sha256").hex(),
        }
        return SealedEvent(doc=doc, side=SideRecord(ref=ref, salt=salt, blob=blob))

    def open(self, record: SideRecord) -> dict[str, str]:
        """Decrypt a side record; a wrong key or a tampered record is an error, never garbage."""
        try:
            plain = self._aead.decrypt(record.blob[:12], record.blob[12:], _aad(record.ref))
        except InvalidTag:
            raise ValueError("side record does not decrypt with this key") from None
        values = orjson.loads(plain)
        return {str(k): str(v) for k, v in values.items()}


def _aad(ref: str) -> bytes:
    return f"privacy-audit-side/v1|{ref}".encode()
