"""Subject rights with no shop adapter: the middleware answers for the data it holds itself.

Without an adapter the middleware cannot reach the shop's database, but it still holds the
subject's key (so erasure can crypto-shred every ciphertext and vault token the shop stores), the
consent history and receipts, the access and login log and its own rights records. This adapter
says "the shop holds nothing I can reach"; receipts and exports name what that leaves uncovered.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from .adapter import ErasureOutcome, RetentionItem, ShopAdapterError, ShopRecord

NO_ADAPTER = "none"


class MiddlewareOnlyAdapter:
    """The adapter used when PRIVACY_SHOP_ADAPTER is unset (or `none`)."""

    name = NO_ADAPTER
    reaches_shop = False

    async def records(self, subject: str) -> list[ShopRecord]:
        return []

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> ErasureOutcome:
        return ErasureOutcome()

    async def rectify(self, subject: str, changes: dict[str, Any]) -> list[str]:
        raise ShopAdapterError("corrections are made in the shop itself: no shop adapter is configured")

    async def expired(self, category: str, cutoff: dt.datetime) -> list[RetentionItem]:
        return []

    async def apply_retention(self, items: list[RetentionItem], action: Literal["delete", "anonymise"]) -> int:
        return 0


def reaches_shop(adapter: object) -> bool:
    """Whether an adapter reaches the shop's own data (every real adapter does)."""
    return bool(getattr(adapter, "reaches_shop", True))


def from_runtime(runtime: Any) -> MiddlewareOnlyAdapter:
    """The `none` entry of the shop-adapter table."""
    return MiddlewareOnlyAdapter()
