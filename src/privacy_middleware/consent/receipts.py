"""Signed consent receipts: one per change, shaped like ISO/IEC TS 27560 (DPV profile), as a JWS.

The receipt is handed to the person and stored with the record, so either side can prove what was
agreed. It is a compact JWS signed with Ed25519 (`EdDSA`) and verifiable with the public key alone.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..crypto.jws import JwsSigner, key_id, verify
from ..policy.schema import Policy
from ..store.consent_records import ConsentRecord
from .decisions import mechanism

__all__ = ["RECEIPT_TYPE", "ReceiptSigner", "key_id", "receipt_claims", "verify_receipt"]

RECEIPT_TYPE = "consent-receipt+jwt"
SCHEMA = "https://w3id.org/dpv/guides/consent-27560"

_METHOD_EVENT = {
    "banner": "explicitly-expressed",
    "api": "explicitly-expressed",
    "withdrawal": "explicitly-expressed",
    "account_link": "expressed",
    "tcf": "expressed",
    "gpc": "expressed",
}


def _state(record: ConsentRecord, granted: bool) -> str:
    if granted:
        return "dpv:ConsentGiven"
    return "dpv:ConsentWithdrawn" if record.method in ("withdrawal", "gpc") else "dpv:ConsentRefused"


def receipt_claims(record: ConsentRecord, policy: Policy) -> dict[str, Any]:
    """The receipt body for one record (ISO/IEC TS 27560 field names, DPV consent states)."""
    info = policy.policy
    processing = []
    for name, granted in sorted(record.purposes.items()):
        purpose = policy.purposes.get(name)
        processing.append(
            {
                "purpose": name,
                "purpose_description": purpose.description if purpose else "",
                "legal_basis": purpose.legal_basis if purpose else "consent",
                "consent_mechanism": mechanism(purpose) if purpose else "opt_in",
                "consent_state": _state(record, granted),
            }
        )
    return {
        "schema_version": "ISO/IEC TS 27560:2023",
        "conforms_to": SCHEMA,
        "record_id": record.id,
        "pii_principal_id": record.holder.key,
        "privacy_notice": {
            "name": info.name,
            "version": record.policy_version,
            "effective_date": info.effective_date.isoformat(),
        },
        "data_controller": {"name": info.controller or info.name, "contact": info.contact},
        "processing": processing,
        "consent_event": {
            "event_type": _METHOD_EVENT.get(record.method, "expressed"),
            "event_time": record.recorded_at.isoformat(),
            "expression_method": record.method,
            "expressed_by": "data subject",
            "source": {"ip_prefix": record.ip_prefix, "user_agent_family": record.ua_family},
        },
        "linked_from": record.linked_from,
        "iat": int(record.recorded_at.timestamp()),
    }


class ReceiptSigner:
    """Signs one consent record's receipt (the shared Ed25519 JWS signer, `typ` consent-receipt+jwt)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._jws = JwsSigner(private_key, RECEIPT_TYPE)
        self.public_key = self._jws.public_key
        self.kid = self._jws.kid

    def sign(self, record: ConsentRecord, policy: Policy) -> str:
        return self._jws.sign(receipt_claims(record, policy))

    def public_key_pem(self) -> str:
        return self._jws.public_key_pem()


def verify_receipt(token: str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The receipt's claims if the signature is genuine; `PrivacyError('receipt_invalid')` otherwise."""
    return verify(token, public_key, typ=RECEIPT_TYPE, require=["iat", "record_id"], what="consent receipt")
