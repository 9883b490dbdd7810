"""Canary records: decoy customers and orders nobody has a reason to read.

The registry remembers them by keyed hash only (HMAC-SHA256 under the canary key), so neither the
store nor a memory dump lists which ids are traps. `matches` is the hot check: one HMAC per
subject of a disclosure, against an in-memory set refreshed from the store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ..store import Database
from ..store.breach import CanaryRow, insert_canaries, read_canaries, retire_canaries

KINDS = ("customer", "order")


def now_us() -> int:
    return time.time_ns() // 1000


class CanaryKey:
    """Keyed hashing of record ids; the key is the same on every instance."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the canary key must be at least 16 bytes")
        self._key = hashlib.sha256(b"privacy-canary\x00" + key).digest()

    def __repr__(self) -> str:
        return "CanaryKey(...)"

    def digest(self, kind: str, record_id: str) -> str:
        return hmac.new(self._key, f"{kind}:{record_id}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class PlantedCanary:
    """What a planter created: the decoy customer's id (the subject) and its orders' ids."""

    customer_id: str
    order_ids: tuple[str, ...]
    label: str


class Planter(Protocol):
    async def plant(self, profile: dict[str, Any]) -> PlantedCanary: ...


class CanaryRegistry:
    """Store-backed set of active canary digests, with the in-memory copy detectors use."""

    def __init__(self, database: Database, key: CanaryKey) -> None:
        self.database = database
        self.key = key
        self._active: frozenset[str] = frozenset()
        self.loaded_us = 0

    async def refresh(self) -> int:
        async with self.database.connect() as conn:
            rows = await read_canaries(conn, active_only=True)
        self._active = frozenset(row.digest for row in rows)
        self.loaded_us = now_us()
        return len(self._active)

    @property
    def active(self) -> int:
        return len(self._active)

    def matches(self, subjects: Iterable[str]) -> list[str]:
        """The digests of the subjects that are canary customers (usually none)."""
        if not self._active:
            return []
        found = []
        for subject in subjects:
            digest = self.key.digest("customer", subject)
            if digest in self._active:
                found.append(digest)
        return found

    def is_canary_order(self, order_id: str) -> bool:
        return self.key.digest("order", order_id) in self._active

    async def remember(self, planted: PlantedCanary, *, batch: str) -> list[CanaryRow]:
        when = now_us()
        rows = [
            CanaryRow(self.key.digest("customer", planted.customer_id), "customer", planted.label, batch, when, None)
        ]
        rows += [
            CanaryRow(self.key.digest("order", order), "order", f"order of {planted.label}", batch, when, None)
            for order in planted.order_ids
        ]
        async with self.database.begin() as conn:
            await insert_canaries(conn, rows)
        await self.refresh()
        return rows

    async def list(self, *, include_retired: bool = False) -> list[CanaryRow]:
        async with self.database.connect() as conn:
            return await read_canaries(conn, active_only=not include_retired)

    async def retire(self, selectors: Iterable[str]) -> int:
        """Retire canaries named by digest prefix (8+ hex digits), batch name, or record id."""
        wanted = [s.strip() for s in selectors if s.strip()]
        async with self.database.begin() as conn:
            rows = await read_canaries(conn, active_only=True)
            chosen: set[str] = set()
            for selector in wanted:
                hashed = {self.key.digest(kind, selector) for kind in KINDS}
                for row in rows:
                    by_prefix = len(selector) >= 8 and row.digest.startswith(selector.lower())
                    if by_prefix or row.batch == selector or row.digest in hashed:
                        chosen.add(row.digest)
            count = await retire_canaries(conn, sorted(chosen), now_us())
        await self.refresh()
        return count


# -- realistic, clearly fake profiles ---------------------------------------------------------------

_FIRST = ("Avery", "Rowan", "Jordan", "Quinn", "Morgan", "Sasha", "Riley", "Elliot", "Harper", "Emerson")
_LAST = ("Canary", "Decoy", "Tripwire", "Lure")
_STREETS = ("Fictional Lane", "Nowhere Road", "Sample Street", "Example Close")
# Ofcom reserves 020 7946 0000-0999 for drama: never a real subscriber.
_PHONE = "+44 20 7946 0{:03d}"
# A card number of a test range every processor refuses for real payments.
_TEST_CARD = "4000 0000 0000 0002"


def fake_profile(index: int = 0) -> dict[str, Any]:
    """A decoy customer that looks real to a script yet is plainly a trap to a person."""
    token = secrets.token_hex(4)
    first = _FIRST[secrets.randbelow(len(_FIRST))]
    last = _LAST[secrets.randbelow(len(_LAST))]
    return {
        "email": f"canary.{token}@example.net",
        "password": secrets.token_urlsafe(18),
        "name": f"{first} {last}",
        "phone": _PHONE.format(secrets.randbelow(1000)),
        "birth_date": f"19{70 + secrets.randbelow(30)}-0{1 + secrets.randbelow(9)}-1{secrets.randbelow(10)}",
        "street": f"{1 + secrets.randbelow(98)} {_STREETS[index % len(_STREETS)]}",
        "city": "Testville",
        "postal_code": "ZZ99 9ZZ",  # the NHS "no fixed abode" pseudo-postcode: never a real address
        "country": "GB",
        "card": _TEST_CARD,
    }
