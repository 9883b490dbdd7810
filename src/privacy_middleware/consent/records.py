"""Consent records, holders and the state derived from their history.

They are the rows of the consent store, so they live with it (`store/consent_records.py`); this
module names them for the consent domain.
"""

from ..store.consent_records import (
    HOLDER_ID_MAX,
    Choice,
    ConsentRecord,
    ConsentState,
    Holder,
    HolderKind,
    InvalidHolder,
    Method,
    derive_state,
    user_agent_family,
    utcnow,
)

__all__ = [
    "HOLDER_ID_MAX",
    "Choice",
    "ConsentRecord",
    "ConsentState",
    "Holder",
    "HolderKind",
    "InvalidHolder",
    "Method",
    "derive_state",
    "user_agent_family",
    "utcnow",
]
