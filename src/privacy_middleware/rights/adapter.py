"""The shop adapter seam: how the middleware reaches a shop's own data about one subject.

Subject-rights requests (access, export, erasure, rectification) and retention need the shop's
stored data, which the middleware never holds. Each shop platform implements this protocol once
(the demo shop in `demo/adapter.py`, platforms under `integrations/`). Methods raise
`ShopAdapterError` with `retryable=True` for failures worth retrying (timeouts, 5xx, locks).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable


class ShopAdapterError(Exception):
    """The shop could not do what was asked. The message names the operation, never personal data."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class ShopRecord:
    """One stored item about a subject, as the shop's API would return it.

    `shape` names the policy shape that classifies its fields (so protected fields can be revealed
    for an export and categories listed); `kind` is the shop's own word (customer, order, address...).
    """

    kind: str
    id: str
    data: dict[str, Any]
    shape: str = ""
    created_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    deleted: list[str] = field(default_factory=list)  # "kind:id"
    anonymised: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # ("kind:id", reason)


@dataclass(frozen=True, slots=True)
class RetentionItem:
    kind: str
    id: str
    category: str
    created_at: dt.datetime
    # The person the item is about, when the shop knows (audit events name it); None otherwise.
    subject: str | None = None


@runtime_checkable
class ShopAdapter(Protocol):
    name: str

    async def records(self, subject: str) -> list[ShopRecord]:
        """Everything the shop holds about the subject (empty when nothing)."""
        ...

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> ErasureOutcome:
        """Delete the subject's data; records whose categories are on legal hold
        (`{category: reason}`) are anonymised instead: personal fields cleared, the rest kept."""
        ...

    async def rectify(self, subject: str, changes: dict[str, Any]) -> list[str]:
        """Apply corrections to the subject's profile; returns the field names changed."""
        ...

    async def expired(self, category: str, cutoff: dt.datetime) -> list[RetentionItem]:
        """Items holding `category` created before `cutoff`."""
        ...

    async def apply_retention(self, items: list[RetentionItem], action: Literal["delete", "anonymise"]) -> int:
        """Delete or anonymise the given items; returns how many were changed."""
        ...
