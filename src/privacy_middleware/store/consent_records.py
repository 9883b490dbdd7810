"""Consent records: who chose what, under which policy version, how, when and from where.

History is append-only; the current state is a fold over it (the newest choice per purpose wins).
Where a record comes from is kept only as much as proof needs: the client IP truncated to its
network (IPv4 /24, IPv6 /48) and the user-agent family, never the full string.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from ..errors import PrivacyError

HolderKind = Literal["subject", "visitor"]
Method = Literal["banner", "api", "gpc", "withdrawal", "tcf", "account_link"]
METHODS: frozenset[str] = frozenset(get_args(Method))
HOLDER_ID_MAX = 128
# Any visible characters (IdP subjects can be e-mail addresses, "auth0|123", or non-ASCII).
_HOLDER_ID_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")


class InvalidHolder(PrivacyError, ValueError):
    """A subject or visitor id that cannot name a consent holder (empty, too long, whitespace)."""

    def __init__(self) -> None:
        super().__init__("invalid_holder", "the subject or visitor id is not usable for consent", 400)


@dataclass(frozen=True, slots=True)
class Holder:
    """Whose consent this is: a known subject (account) or an anonymous visitor (browser)."""

    kind: HolderKind
    id: str

    def __post_init__(self) -> None:
        if self.kind not in ("subject", "visitor") or not isinstance(self.id, str):
            raise InvalidHolder()
        if not _HOLDER_ID_RE.fullmatch(self.id):
            raise InvalidHolder()

    @property
    def key(self) -> str:
        """A compact, unambiguous key (cache keys, bus payloads, cookies)."""
        return ("s:" if self.kind == "subject" else "v:") + self.id

    @classmethod
    def from_key(cls, key: str) -> Holder:
        prefix, _, ident = key.partition(":")
        if prefix == "s":
            return cls("subject", ident)
        if prefix == "v":
            return cls("visitor", ident)
        raise InvalidHolder()

    @classmethod
    def subject(cls, subject_id: str) -> Holder:
        return cls("subject", subject_id)

    @classmethod
    def visitor(cls, visitor_id: str) -> Holder:
        return cls("visitor", visitor_id)


@dataclass(frozen=True, slots=True)
class Choice:
    """The standing choice for one purpose, with the facts that decide whether it still counts."""

    granted: bool
    policy_version: str
    method: Method
    at: dt.datetime
    record_id: str


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One change, exactly as it was expressed. Never updated, never deleted by this layer."""

    id: str
    holder: Holder
    purposes: Mapping[str, bool]
    policy_version: str
    method: Method
    recorded_at: dt.datetime
    ip_prefix: str | None = None
    ua_family: str = "unknown"
    # For `account_link`: the visitor whose choices moved to this subject.
    linked_from: str | None = None
    # The signed consent receipt (compact JWS) handed to the person for this change.
    receipt: str | None = None

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class ConsentState:
    """The current choices of one holder, derived from their history."""

    holder: Holder | None
    choices: Mapping[str, Choice] = field(default_factory=dict)
    # Newest record id folded in; lets caches and receipts point at the state they reflect.
    last_record_id: str | None = None
    updated_at: dt.datetime | None = None

    def granted(self) -> frozenset[str]:
        return frozenset(p for p, c in self.choices.items() if c.granted)

    def denied(self) -> frozenset[str]:
        return frozenset(p for p, c in self.choices.items() if not c.granted)


def derive_state(holder: Holder | None, records: Iterable[ConsentRecord]) -> ConsentState:
    """Fold a holder's history (oldest first) into the standing choice per purpose."""
    choices: dict[str, Choice] = {}
    last: ConsentRecord | None = None
    for record in records:
        for purpose, granted in record.purposes.items():
            choices[purpose] = Choice(
                granted=bool(granted),
                policy_version=record.policy_version,
                method=record.method,
                at=record.recorded_at,
                record_id=record.id,
            )
        last = record
    return ConsentState(
        holder=holder,
        choices=choices,
        last_record_id=last.id if last else None,
        updated_at=last.recorded_at if last else None,
    )


# Order matters: several browsers name another in their user-agent string.
_UA_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("bot", re.compile(r"bot|crawler|spider|crawling|headless", re.I)),
    ("edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("opera", re.compile(r"OPR/|Opera")),
    ("samsung", re.compile(r"SamsungBrowser/")),
    ("firefox", re.compile(r"Firefox/|FxiOS/")),
    ("chrome", re.compile(r"Chrome/|CriOS/|Chromium/")),
    ("safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
)


def user_agent_family(user_agent: str | None) -> str:
    """The browser family only (e.g. `firefox`), enough to prove a record's channel, no fingerprint."""
    if not user_agent:
        return "unknown"
    for family, pattern in _UA_FAMILIES:
        if pattern.search(user_agent):
            return family
    return "other"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
