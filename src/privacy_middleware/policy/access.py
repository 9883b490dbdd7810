"""The one answer to "may recipient R see category C of subject S for purpose P?".

Four facts decide it, in this order:
1. the recipient's grants (`[recipients.R].sees`): the longest granted category prefix names the
   transform (`reveal`, `mask`, `pseudonymise`, ...); anything not granted is dropped (default deny);
2. the subject's restriction of processing (Art. 18): withheld unless every purpose the recipient
   serves is `allowed_under_restriction`;
3. the subject's objection to the purpose (Art. 21): withheld, unless the purpose's legal basis is
   one an objection does not reach (`rights_rule` below);
4. consent for the purpose (`consent/decisions.py`, whose rows 2 and 3 are `rights_rule`).

Which subject a record is about comes first: the record names it, or, for records that do not (a
guest's order), the owner bound when the shop created the record (`record_owner`). A recipient then
reads a guest's record exactly as a customer's: same grants, same flags.

Responses, the outbound transport, export, consent-gated tracking and `policy explain` all ask here.

The subject reading their own records sees every field in clear, except a card number: the owner
sees it masked to the last four digits (the brand and last four companions stay beside it) unless
`[cards].reveal` names a purpose the request serves (`owner_transform`, PCI DSS 3.4.1).

The objection rule (GDPR Art. 21): an objection concerns processing based on legitimate interests
or a public task (21(1)) and direct marketing (21(2)); for a consent-based purpose it works as a
withdrawal that outlives a new banner. It does not reach processing needed for a contract
(Art. 6(1)(b)), a legal obligation (6(1)(c)) or someone's vital interest (6(1)(d)): an objection
recorded against such a purpose (the API refuses new ones, but a purpose's basis can change with
a new policy version) neither withholds the subject's data nor denies the purpose. A purpose the
policy does not know is objectable (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from .schema import Policy, Purpose

DEFAULT_DENY = "drop"
OWNER_CARD_MASK = "mask:card"
# Legal bases an objection reaches (Art. 21(1) and (2); consent: as a withdrawal). Not contract,
# legal obligation or vital interest.
OBJECTABLE_BASES = frozenset({"legitimate_interest", "public_task", "consent"})
RightsReason = Literal["restricted", "objected"]


def objectable(purpose: Purpose | None) -> bool:
    """Whether an objection reaches this purpose (unknown purposes: yes, fail closed)."""
    return purpose is None or purpose.legal_basis in OBJECTABLE_BASES


def rights_rule(name: str, purpose: Purpose | None, objected: frozenset[str], restricted: bool) -> RightsReason | None:
    """The subject's rights against one purpose: "restricted", "objected" or None (no bar).

    Restriction bars every purpose not `allowed_under_restriction`; an objection bars the purpose
    it names when its legal basis is objectable (module docstring).
    """
    if restricted and not (purpose is not None and purpose.allowed_under_restriction):
        return "restricted"
    if name in objected and objectable(purpose):
        return "objected"
    return None


def card_categories(policy: Policy) -> frozenset[str]:
    """Categories that hold card numbers: `[cards].category` and any field validated as a card number."""
    found = {policy.cards.category}
    bodies = [shape.fields for shape in policy.shapes.values()]
    for route in policy.routes:
        bodies.extend(rules.fields for rules in (route.request, route.response) if rules is not None)
    for recipient in policy.recipients.values():
        bodies.extend(endpoint.request.fields for endpoint in recipient.endpoints)
    found.update(rule.category for fields in bodies for rule in fields if rule.validate_as == "card_number")
    return frozenset(found)


def is_card_category(cards: frozenset[str], category: str) -> bool:
    return category in cards or any(category.startswith(card + ".") for card in cards)


def owner_transform(cards: frozenset[str], category: str, reveal_cards: bool) -> str:
    """What the subject sees of one category of their own record: all of it, but a card number only
    masked to its last four digits unless the policy reveals it for the request's purpose."""
    if not reveal_cards and is_card_category(cards, category):
        return OWNER_CARD_MASK
    return "keep"


class SubjectFlagsView(Protocol):
    """A subject's restriction and objections (the rights store's `SubjectFlags`)."""

    @property
    def restricted(self) -> bool: ...
    @property
    def objections(self) -> frozenset[str]: ...


class FlagReader(Protocol):
    async def get(self, subject: str) -> SubjectFlagsView: ...


class ConsentView(Protocol):
    """A request's consent decision (`consent.decisions.Decision`)."""

    def allowed(self, purpose: str) -> bool: ...
    def reason(self, purpose: str) -> str: ...


@dataclass(frozen=True, slots=True)
class PurposeAnswer:
    """Whether a purpose may run for this request, with the decision table's reason code."""

    purpose: str
    allowed: bool
    reason: str


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

    def reveals_cards(self, *purposes: str | None) -> bool:
        """Whether `[cards].reveal` grants the card's owner the full number for one of these purposes."""
        return any(purpose in self.policy.cards.reveal for purpose in purposes if purpose)

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

    def bars(self, objected: frozenset[str], restricted: bool, recipient: str | None, purpose: str | None) -> bool:
        """Whether these flags keep a subject's data from this recipient acting for this purpose."""
        if purpose is not None and purpose in objected and objectable(self.policy.purposes.get(purpose)):
            return True
        if not restricted:
            return False
        return not self.allowed_under_restriction(self.purposes_of(recipient, purpose))

    async def blocked_for(self, subject: str, recipient: str | None, purpose: str | None) -> bool:
        """Whether a subject's restriction or objection keeps their data from this recipient."""
        if self.flags is None:
            return False
        flags = await self.flags.get(subject)
        return self.bars(frozenset(flags.objections), flags.restricted, recipient, purpose)

    def purpose(self, name: str, consent: ConsentView) -> PurposeAnswer:
        """May purpose `name` run for this request? The request's consent decision (whose rights
        rows are `rights_rule`) answers; consent-gated tracking and outbound calls ask here."""
        return PurposeAnswer(name, consent.allowed(name), consent.reason(name))

    def allows(self, name: str, consent: ConsentView) -> bool:
        """`purpose(name, consent).allowed`, without building the answer (the tracking gate asks per event)."""
        return consent.allowed(name)

    async def decide(self, recipient: str, category: str, subject: str | None, purpose: str | None) -> Answer:
        """The whole answer for one category of one subject."""
        answer = self.explain(recipient, category)
        if answer.allowed and subject is not None and await self.blocked_for(subject, recipient, purpose):
            return Answer(DEFAULT_DENY, answer.granted_by, "the subject restricted or objected to this processing")
        return answer
