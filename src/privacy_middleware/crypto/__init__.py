"""Field-level encryption: envelopes, the key hierarchy, providers, tokens, cards.

The middleware builds one `KeyService` per tenant at start-up and passes it in.
"""

from .cards import (
    CardBrand,
    CardCompanions,
    card_brand,
    is_sensitive_authentication_field,
    length_valid,
    luhn_valid,
    mask_pan,
    normalise_pan,
    validate_pan,
)
from .envelope import is_envelope
from .errors import DecryptionFailed, KeyServiceUnavailable, SubjectErased
from .results import ErasureResult, GenerationStatus, KeyStatus, RewrapResult, RotationResult
from .service import KeyService, is_token

__all__ = [
    "CardBrand",
    "CardCompanions",
    "DecryptionFailed",
    "ErasureResult",
    "GenerationStatus",
    "KeyService",
    "KeyServiceUnavailable",
    "KeyStatus",
    "RewrapResult",
    "RotationResult",
    "SubjectErased",
    "card_brand",
    "is_envelope",
    "is_sensitive_authentication_field",
    "is_token",
    "length_valid",
    "luhn_valid",
    "mask_pan",
    "normalise_pan",
    "validate_pan",
]
