"""The one answer to "may recipient R see category C of subject S for purpose P?".

Three facts decide it, in this order:
1. the recipient's grants (`[recipients.R].sees`): the longest granted category prefix names the
   transform (`reveal`, `mask`, `pseudonymise`, ...); anything not granted is dropped (default deny);
2. the subject's objection to the purpose (Art. 21): their data is withheld from it;
3. the subject's restriction of processing (Art. 18): withheld unless every purpose the recipient
   serves is `allowed_under_restriction`.

Which subject a record is about comes first: the record names it, or, for records that do not (a
guest's order), the owner bound when the shop created the record (`record_owner`). A recipient then
reads a guest's record exactly as a customer's: same grants, same flags.

Responses, the outbound transport, export and `policy explain` all ask here. (Consent for a
purpose is the consent decision table's job, fed by the same subject flags read here.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .schema import Policy

DEFAULT_DENY = "drop"


class SubjectFlagsView(Protocol):
    """A subject's restriction and objections (the rights store's `SubjectFlags`)."""

    @property
    def restricted(self) -> bool: ...
    @property
    def objections(self) -> frozenset[str]: ...


class FlagReader(Protocol):
    async def get(self, subject: str) -> SubjectFlagsView: ...


class OwnerReader(Protocol):
    """The subjects records were bound to when the shop created them (store/record_owners.py)."""

    async def owners(self, kind: str, keys: Sequence[str]) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """What the recipient gets for one category, and why (for `policy explain` and the officer)."""

    transform: str
    granted_by: str | None
    reason: str

    @property
    def allowed(self) -> bool:
        return self.transform != DEFAULT_DENY


def grant_for(grants: Mapping[str, str], category: str) -> tuple[str, str | None]:
    """(transform, the granted category that decided it); the longest granted prefix wins,
    and anything not granted is dropped (default deny: no granting category)."""
    best, best_key = DEFAULT_DENY, None
    for granted, transform in grants.items():
        if (category == granted or category.startswith(granted + ".")) and (
            best_key is None or len(granted) > len(best_key)
        ):
            best, best_key = transform, granted
    return best, best_key


class Access:
    """Built once per policy; reads subject flags through `flags` (None: no flags are kept)."""

    def __init__(self, policy: Policy, flags: FlagReader | None = None, owners: OwnerReader | None = None) -> None:
        self.policy = policy
        self.flags = flags
        self.owners = owners

    async def record_owners(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        """record key -> subject, for records of this kind that do not name their subject."""
        if self.owners is None or not keys:
            return {}
        return await self.owners.owners(kind, keys)

    def grants(self, recipient: str) -> dict[str, str]:
        declared = self.policy.recipients.get(recipient)
        return dict(declared.sees) if declared else {}

    def purposes_of(self, recipient: str | None, purpose: str | None) -> list[str]:
        declared = self.policy.recipients.get(recipient or "")
        return list(declared.purposes) if declared else ([purpose] if purpose else [])

    def allowed_under_restriction(self, purposes: Iterable[str]) -> bool:
        names = list(purposes)
        return bool(names) and all(
            self.policy.purposes[p].allowed_under_restriction for p in names if p in self.policy.purposes
        )

    def explain(self, recipient: str, category: str) -> Answer:
        """The grant part of the answer, with its reason (no subject needed)."""
        if recipient not in self.policy.recipients:
            return Answer(DEFAULT_DENY, None, f"{recipient!r} is not a declared recipient: it sees no personal data")
        transform, granted = grant_for(self.grants(recipient), category)
        if granted is None:
            return Answer(transform, None, f"not granted in recipients.{recipient}.sees: dropped (default deny)")
        return Answer(transform, granted, f'granted by recipients.{recipient}.sees["{granted}"] = "{transform}"')

    async def subject_flags(self, subject: str) -> tuple[frozenset[str], bool]:
        """(objected purposes, restricted) for a subject; set through the subject-rights API."""
        if self.flags is None:
            return frozenset(), False
        flags = await self.flags.get(subject)
        return frozenset(flags.objections), flags.restricted

    async def blocked_for(self, subject: str, recipient: str | None, purpose: str | None) -> bool:
        """Whether a subject's restriction or objection keeps their data from this recipient."""
        if self.flags is None:
            return False
        flags = await self.flags.get(subject)
        if purpose is not None and purpose in flags.objections:
            return True
        if not flags.restricted:
            return False
        return not self.allowed_under_restriction(self.purposes_of(recipient, purpose))

    async def decide(self, recipient: str, category: str, subject: str | None, purpose: str | None) -> Answer:
        """The whole answer for one category of one subject."""
        answer = self.explain(recipient, category)
        if answer.allowed and subject is not None and await self.blocked_for(subject, recipient, purpose):
            return Answer(DEFAULT_DENY, answer.granted_by, "the subject restricted or objected to this processing")
        return answer
