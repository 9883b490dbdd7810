"""Fixtures for the consent tests: one shop policy, keys, and a service factory."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy_middleware.consent import ConsentService
from privacy_middleware.policy.schema import Policy
from privacy_middleware.store import Database

POLICY_DOCUMENT: dict[str, Any] = {
    "policy": {
        "name": "Demo shop",
        "version": "2026-03",
        "effective_date": "2026-03-01",
        "consent_compatible_versions": ["2026-01"],
        "controller": "Demo Shop GmbH",
        "contact": "privacy@shop.example",
    },
    "categories": {"user.contact.email": {}},
    "purposes": {
        "order_fulfilment": {"legal_basis": "contract", "cookie_class": "essential"},
        "security": {"legal_basis": "legitimate_interest", "allowed_under_restriction": True},
        "analytics": {
            "legal_basis": "consent",
            "consent": "opt_in",
            "tcf_purposes": [7, 8, 9],
            "google_consent": ["analytics_storage"],
            "cookie_class": "analytics",
        },
        "marketing": {
            "legal_basis": "consent",
            "consent": "opt_in",
            "gpc_opt_out": True,
            "tcf_purposes": [1, 3, 4],
            "google_consent": ["ad_storage", "ad_user_data", "ad_personalization"],
            "cookie_class": "advertising",
        },
        "personalisation": {
            "legal_basis": "legitimate_interest",
            "consent": "opt_out",
            "gpc_opt_out": True,
            "cookie_class": "functional",
        },
        "product_updates": {"legal_basis": "legitimate_interest", "consent": "notice"},
    },
    "tracking": {
        "cookies": [
            {"pattern": "_ga*", "purpose": "analytics"},
            {"pattern": "_fbp", "purpose": "marketing"},
            {"pattern": "_gcl_*", "purpose": "marketing"},
        ]
    },
}


def make_policy(**policy_overrides: Any) -> Policy:
    document = {**POLICY_DOCUMENT, "policy": {**POLICY_DOCUMENT["policy"], **policy_overrides}}
    return Policy.model_validate(document)


@pytest.fixture
def policy() -> Policy:
    return make_policy()


@pytest.fixture
def policy_factory() -> Callable[..., Policy]:
    """Build the test policy with other `[policy]` values (e.g. another version)."""
    return make_policy


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def cookie_secret() -> bytes:
    return secrets.token_bytes(32)


ServiceFactory = Callable[..., ConsentService]


@pytest.fixture
def make_service(policy: Policy, signing_key: Ed25519PrivateKey, cookie_secret: bytes) -> Callable[..., ConsentService]:
    def build(database: Database, **options: Any) -> ConsentService:
        options.setdefault("cookie_secret", cookie_secret)
        options.setdefault("signing_key", signing_key)
        return ConsentService(database, options.pop("policy", policy), **options)

    return build


@pytest.fixture
async def service(database: Database, make_service: ServiceFactory) -> AsyncIterator[ConsentService]:
    yield make_service(database)
