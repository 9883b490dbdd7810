"""The refusals of the encryption layer, as PrivacyError subclasses with stable codes.

Messages say what went wrong in general terms only: never a value, a key, a ciphertext or a
subject identifier, because these errors end up in problem+json bodies and logs.
"""

from __future__ import annotations

from ..errors import PrivacyError


class KeyServiceUnavailable(PrivacyError):
    """The root key provider (Vault, KMS, keyring) cannot be reached or refused to answer."""

    def __init__(self, message: str = "the key service is unavailable") -> None:
        super().__init__("key_service_unavailable", message, 503, headers={"Retry-After": "5"})


class KeyStoreUnavailable(PrivacyError):
    """The store that holds the wrapped subject keys cannot be reached."""

    def __init__(self, message: str = "the key store is unavailable") -> None:
        super().__init__("key_store_unavailable", message, 503, headers={"Retry-After": "5"})


class DecryptionFailed(PrivacyError):
    """A value could not be decrypted: tampered, malformed, unknown key, or bound elsewhere."""

    def __init__(self, message: str = "the value could not be decrypted") -> None:
        super().__init__("decryption_failed", message, 422)


class SubjectErased(PrivacyError):
    """The subject's key was destroyed on erasure, so the value is gone for good."""

    def __init__(self, message: str = "the data subject's key was erased; the value no longer exists") -> None:
        super().__init__("subject_erased", message, 410)
