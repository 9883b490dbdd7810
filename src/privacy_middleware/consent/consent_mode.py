"""Google Consent Mode v2, derived from the same decision as everything else.

A consent type is `granted` only when at least one policy purpose maps to it (`google_consent`)
and every purpose mapping to it is allowed: one denied purpose keeps the type denied.
"""

from __future__ import annotations

from typing import Literal, get_args

from ..policy.schema import GoogleConsentType, Policy
from .decisions import Decision

ConsentModeValue = Literal["granted", "denied"]
CONSENT_TYPES: tuple[GoogleConsentType, ...] = get_args(GoogleConsentType)


def consent_mode(policy: Policy, decision: Decision) -> dict[str, ConsentModeValue]:
    """`{"ad_storage": ..., "analytics_storage": ..., "ad_user_data": ..., "ad_personalization": ...}`."""
    result: dict[str, ConsentModeValue] = {}
    for consent_type in CONSENT_TYPES:
        purposes = [name for name, p in policy.purposes.items() if consent_type in p.google_consent]
        granted = bool(purposes) and all(decision.allowed(name) for name in purposes)
        result[consent_type] = "granted" if granted else "denied"
    return result


class ConsentModeHeaders:
    """The Consent Mode header for a policy, built once per distinct set of allowed purposes."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._purposes = {name for name, p in policy.purposes.items() if p.google_consent}
        self._built: dict[frozenset[str], bytes] = {}

    def header(self, decision: Decision) -> bytes:
        key = frozenset(name for name in self._purposes if decision.allowed(name))
        built = self._built.get(key)
        if built is None:
            built = consent_mode_header(consent_mode(self.policy, decision)).encode()
            if len(self._built) < 256:
                self._built[key] = built
        return built


def consent_mode_header(mode: dict[str, ConsentModeValue]) -> str:
    """A compact header form for the storefront, e.g. `ad_storage=denied, analytics_storage=granted`."""
    return ", ".join(f"{key}={value}" for key, value in mode.items())
