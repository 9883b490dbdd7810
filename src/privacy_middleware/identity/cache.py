"""A bounded cache of resolved identities keyed by a keyed hash of the credential.

A token or a session cookie is never kept as a key: an HMAC of it under the identity cache key is,
so a memory dump of the cache gives nothing that could be replayed. Each entry has its own expiry
(a token's `exp`, a session's bounded lifetime), never longer than the provider allows.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class KeyedCache(Generic[V]):
    def __init__(self, key: bytes, *, size: int, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def name(self, credential: str) -> str:
        return hmac.new(self._key, credential.encode(), hashlib.sha256).hexdigest()

    def get(self, credential: str) -> V | None:
        name = self.name(credential)
        found = self._entries.get(name)
        if found is None:
            return None
        expires, value = found
        if expires <= self._clock():
            self._entries.pop(name, None)
            return None
        self._entries.move_to_end(name)
        return value

    def put(self, credential: str, value: V, *, until: float) -> None:
        if until <= self._clock():
            return
        name = self.name(credential)
        self._entries[name] = (until, value)
        self._entries.move_to_end(name)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop(self, credential: str) -> None:
        self._entries.pop(self.name(credential), None)

    def __len__(self) -> int:
        return len(self._entries)
