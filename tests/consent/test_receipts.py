import dataclasses
import datetime as dt

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy_middleware.consent.receipts import ReceiptSigner, verify_receipt
from privacy_middleware.errors import PrivacyError
from privacy_middleware.policy.schema import Policy
from privacy_middleware.store.consent_records import ConsentRecord, Holder

RECORD = ConsentRecord(
    id="6f1c1b8e-3f43-4a8e-9a53-0d2b8c6f1e11",
    holder=Holder.subject("cust_42"),
    purposes={"analytics": True, "marketing": False},
    policy_version="2026-03",
    method="banner",
    recorded_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
    ip_prefix="203.0.113.0/24",
    ua_family="firefox",
)


def test_receipt_verifies_with_the_public_key_and_says_what_was_agreed(policy: Policy) -> None:
    signer = ReceiptSigner(Ed25519PrivateKey.generate())
    token = signer.sign(RECORD, policy)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == signer.kid
    claims = verify_receipt(token, signer.public_key)
    assert claims["record_id"] == RECORD.id
    assert claims["pii_principal_id"] == "s:cust_42"
    assert claims["privacy_notice"]["version"] == "2026-03"
    assert claims["data_controller"]["name"] == "Demo Shop GmbH"
    assert claims["consent_event"]["expression_method"] == "banner"
    assert claims["consent_event"]["event_type"] == "explicitly-expressed"
    assert claims["consent_event"]["source"] == {
        "ip_prefix": "203.0.113.0/24",
        "user_agent_family": "firefox",
    }
    states = {p["purpose"]: p["consent_state"] for p in claims["processing"]}
    assert states == {"analytics": "dpv:ConsentGiven", "marketing": "dpv:ConsentRefused"}


def test_withdrawal_receipts_say_withdrawn(policy: Policy) -> None:
    signer = ReceiptSigner(Ed25519PrivateKey.generate())
    withdrawal = dataclasses.replace(RECORD, method="withdrawal", purposes={"analytics": False})
    claims = verify_receipt(signer.sign(withdrawal, policy), signer.public_key)
    assert claims["processing"][0]["consent_state"] == "dpv:ConsentWithdrawn"


def test_tampered_or_foreign_receipts_do_not_verify(policy: Policy) -> None:
    signer = ReceiptSigner(Ed25519PrivateKey.generate())
    token = signer.sign(RECORD, policy)
    header, payload, signature = token.split(".")
    forged_payload = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
    for bad in (f"{header}.{forged_payload}.{signature}", "not.a.jws", ""):
        with pytest.raises(PrivacyError) as info:
            verify_receipt(bad, signer.public_key)
        assert info.value.code == "receipt_invalid"
    with pytest.raises(PrivacyError):
        verify_receipt(token, Ed25519PrivateKey.generate().public_key())
    plain_jwt = jwt.encode({"record_id": "x", "iat": 1}, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    with pytest.raises(PrivacyError):
        verify_receipt(plain_jwt, signer.public_key)


def test_public_key_pem_is_what_an_auditor_needs(policy: Policy) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    signer = ReceiptSigner(Ed25519PrivateKey.generate())
    public = load_pem_public_key(signer.public_key_pem().encode())
    assert verify_receipt(signer.sign(RECORD, policy), public)["record_id"] == RECORD.id  # type: ignore[arg-type]
