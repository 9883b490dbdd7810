"""What one step learns about a request for a later step (or the cookie filter) to use.

A typed record per request, on `RequestContext.facts`: the consent decision computed once, the
login name and lockout seen by the login step, the disclosure the audit records, and the refused
inputs the refusal audit reports (by kind and field, never by value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..audit.attempts import Reservation
    from ..consent.service import Resolution
    from ..fields.engine import FieldReport, Viewer


@dataclass(frozen=True, slots=True)
class Refusal:
    """An input the minimisation guard refused or redacted: which field, what kind, what was done."""

    field: str
    kinds: tuple[str, ...]
    action: str


@dataclass(slots=True)
class Disclosure:
    """Who a response was disclosed to and what it carried (categories and subjects, no values)."""

    viewer: Viewer
    report: FieldReport


@dataclass(slots=True)
class RequestFacts:
    # The caller's consent decision, computed at most once per request (tracking gate, cookie filter).
    consent: Resolution | None = None
    # The login name a sign-in attempt carried (None when it carried none) and the lockout reason.
    login_username: str | None = None
    login_locked: str | None = None
    # The attempt reserved before the shop saw it, settled by the login step afterwards.
    login_reservation: Reservation | None = None
    # The subjects the request's fields were sealed for (protect step); the record binding step
    # binds the record the shop creates from them to that subject.
    sealed_for: frozenset[str] = frozenset()
    # Set by the response disclosure step, recorded by the disclosure audit step.
    disclosure: Disclosure | None = None
    # Set by the minimisation guards, recorded by the refusal audit step.
    refusals: list[Refusal] = field(default_factory=list)
    underage: bool = False
    # For logs: the route template, the request id (the caller's X-Request-ID or a fresh one) and
    # the code of a refusal sent after the shop answered.
    route: str | None = None
    request_id: str | None = None
    refusal_code: str | None = None
