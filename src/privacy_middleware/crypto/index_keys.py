"""Keyed hashes from the tenant index key: subject handles, tombstone markers, blind indexes.

The index key is stable across rotations (it is rewrapped, never replaced), so these values
stay comparable forever. Each use has its own HKDF-derived key, so a blind index can never be
confused with a subject handle. PAN hashes are keyed (PCI DSS 3.5.1.1).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from cachetools import LRUCache
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import PrivacyError
from .cards import normalise_pan
from .encoding import b64url_encode, length_prefixed

BLIND_INDEX_PREFIX = "bi1."


def _derive(key: bytes, *info: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, None, length_prefixed("privacy-middleware", *info)).derive(key)


def normalise_for_index(value: str, category: str) -> str:
    """One spelling per value: Unicode NFKC, trimmed, inner whitespace collapsed, case folded;
    card numbers reduced to their digits."""
    if "card" in category.split("."):
        try:
            return normalise_pan(value)
        except PrivacyError:
            pass
    return " ".join(unicodedata.normalize("NFKC", value).split()).casefold()


class IndexKeys:
    __slots__ = ("_blind", "_blind_root", "_kid", "_subject", "_subject_memo", "tenant")

    def __init__(self, index_key: bytes, tenant: str, *, memo_size: int = 10_000) -> None:
        self.tenant = tenant
        self._subject = _derive(index_key, "subject-handle", tenant)
        self._kid = _derive(index_key, "erased-kid", tenant)
        self._blind: LRUCache[str, bytes] = LRUCache(maxsize=1024)
        self._blind_root = _derive(index_key, "blind-index", tenant)
        self._subject_memo: LRUCache[str, str] = LRUCache(maxsize=memo_size)

    def subject_hash(self, subject: str) -> str:
        """A keyed handle for a subject id: stored instead of the id itself."""
        cached = self._subject_memo.get(subject)
        if cached is None:
            cached = hmac.new(self._subject, subject.encode("utf-8"), hashlib.sha256).hexdigest()
            self._subject_memo[subject] = cached
        return cached

    def kid_hash(self, kid: str) -> str:
        """The tombstone marker of an erased subject key."""
        return hmac.new(self._kid, kid.encode("ascii"), hashlib.sha256).hexdigest()

    def blind_index(self, value: str, category: str) -> str:
        key = self._blind.get(category)
        if key is None:
            key = self._blind[category] = _derive(self._blind_root, "category", category)
        digest = hmac.new(key, normalise_for_index(value, category).encode("utf-8"), hashlib.sha256).digest()
        return BLIND_INDEX_PREFIX + b64url_encode(digest)
