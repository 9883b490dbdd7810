"""Who the caller is, once their credentials were verified (identity/ builds it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller proven by a verified JWT."""

    id: str
    # The person the caller is, when the caller is a customer (the subject of their own data).
    subject: str | None
    recipient: str
    purpose: str | None
    scopes: frozenset[str] = frozenset()
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
