"""The one decision table: may purpose P run for this request? Pure functions, no I/O.

Rows are tried top to bottom for each purpose; the first row that applies decides, and every
decision carries its reason code. (Published in docs/consent.md; keep the two in step.)

| #  | condition                                                           | result | reason              |
|----|---------------------------------------------------------------------|--------|---------------------|
| 1  | purpose not in the policy                                           | deny   | unknown_purpose     |
| 2  | processing restricted (Art. 18) and not `allowed_under_restriction` | deny   | restricted          |
| 3  | purpose objected to (Art. 21), legal basis not contract/legal       | deny   | objected            |
|    | obligation/vital interest                                           |        |                     |
|    | (rows 2 and 3 are `policy.access.rights_rule`, the same rule that   |        |                     |
|    | withholds a subject's data from recipients)                         |        |                     |
| 4  | no consent mechanism (`consent = "none"`, basis other than consent) | allow  | not_consent_based   |
| 5  | the consent store was needed and could not be read                  | deny   | store_unavailable   |
| 6  | GPC = 1 on this request and the purpose has `gpc_opt_out`          | deny   | gpc                 |
| 7  | a standing explicit refusal (any policy version)                    | deny   | explicit_denied     |
| 8  | a standing explicit grant under a compatible policy version         | allow  | explicit_granted    |
|    | (a grant under an incompatible version does not count: it sets     |        |                     |
|    | `reconsent_required` and the table goes on)                        |        |                     |
| 9  | a TC string was sent but is invalid, purpose maps to TCF purposes   | deny   | tcf_invalid         |
| 10 | a valid TC string, purpose maps to TCF purposes: all consented?     | allow/ | tcf_granted /       |
|    |                                                                     | deny   | tcf_denied          |
| 11 | mechanism opt_in (also `legal_basis = consent` with no mechanism)   | deny   | default_opt_in      |
| 12 | mechanism opt_out                                                   | allow  | default_opt_out     |
| 13 | mechanism notice                                                    | allow  | notice              |

Why this order: restriction and objection are rights that override everything consent could
grant; GPC wins over an earlier opt-in (Cal. Code Regs. tit. 11 §7025(c)(3)); a refusal never
expires with a policy change, a grant does; the first-party choice made on the shop's own banner
or API is more specific than a CMP's TC string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..policy.access import rights_rule
from ..policy.schema import Policy, Purpose
from ..store.consent_records import Choice

Reason = Literal[
    "unknown_purpose",
    "restricted",
    "objected",
    "not_consent_based",
    "store_unavailable",
    "gpc",
    "explicit_denied",
    "explicit_granted",
    "tcf_invalid",
    "tcf_granted",
    "tcf_denied",
    "default_opt_in",
    "default_opt_out",
    "notice",
]


@dataclass(frozen=True, slots=True)
class Signals:
    """Everything the table reads besides the policy. Built by the service from one request."""

    choices: Mapping[str, Choice] = field(default_factory=dict)
    gpc: bool = False
    # Consented TCF purpose ids from a valid TC string; None when no TC string was sent.
    tcf_purposes: frozenset[int] | None = None
    tcf_invalid: bool = False
    objected: frozenset[str] = frozenset()
    restricted: bool = False
    store_unavailable: bool = False


@dataclass(frozen=True, slots=True)
class PurposeDecision:
    purpose: str
    allowed: bool
    reason: Reason
    # A grant was found but was given under a policy version that no longer counts.
    reconsent_required: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for every purpose of the policy, for one request."""

    purposes: Mapping[str, PurposeDecision]
    policy_version: str

    def allowed(self, purpose: str) -> bool:
        found = self.purposes.get(purpose)
        return found.allowed if found is not None else False

    def reason(self, purpose: str) -> Reason:
        found = self.purposes.get(purpose)
        return found.reason if found is not None else "unknown_purpose"

    @property
    def granted(self) -> frozenset[str]:
        return frozenset(p for p, d in self.purposes.items() if d.allowed)

    @property
    def denied(self) -> frozenset[str]:
        return frozenset(p for p, d in self.purposes.items() if not d.allowed)

    @property
    def reconsent_required(self) -> bool:
        return any(d.reconsent_required for d in self.purposes.values())


def needs_choice(purpose: Purpose) -> bool:
    """Whether the person's choice gates this purpose (it is 'consent-based' in the docs)."""
    return purpose.consent != "none" or purpose.legal_basis == "consent"


def mechanism(purpose: Purpose) -> Literal["opt_in", "opt_out", "notice"]:
    # Consent as legal basis with no mechanism declared is the strictest kind: opt-in.
    return "opt_in" if purpose.consent == "none" else purpose.consent


def compatible_versions(policy: Policy) -> frozenset[str]:
    """Policy versions under which a grant still counts."""
    return frozenset({policy.policy.version, *policy.policy.consent_compatible_versions})


def decide_purpose(
    name: str,
    purpose: Purpose | None,
    signals: Signals,
    compatible: frozenset[str],
) -> PurposeDecision:
    """Apply the table above to one purpose."""
    if purpose is None:
        return PurposeDecision(name, False, "unknown_purpose")
    barred = rights_rule(name, purpose, signals.objected, signals.restricted)
    if barred is not None:
        return PurposeDecision(name, False, barred)
    if not needs_choice(purpose):
        return PurposeDecision(name, True, "not_consent_based")
    if signals.store_unavailable:
        return PurposeDecision(name, False, "store_unavailable")
    if signals.gpc and purpose.gpc_opt_out:
        return PurposeDecision(name, False, "gpc")
    reconsent = False
    choice = signals.choices.get(name)
    if choice is not None:
        if not choice.granted:
            return PurposeDecision(name, False, "explicit_denied")
        if choice.policy_version in compatible:
            return PurposeDecision(name, True, "explicit_granted")
        reconsent = True
    if purpose.tcf_purposes:
        if signals.tcf_invalid:
            return PurposeDecision(name, False, "tcf_invalid", reconsent)
        if signals.tcf_purposes is not None:
            ok = all(p in signals.tcf_purposes for p in purpose.tcf_purposes)
            return PurposeDecision(name, ok, "tcf_granted" if ok else "tcf_denied", reconsent)
    kind = mechanism(purpose)
    if kind == "opt_in":
        return PurposeDecision(name, False, "default_opt_in", reconsent)
    if kind == "opt_out":
        return PurposeDecision(name, True, "default_opt_out", reconsent)
    return PurposeDecision(name, True, "notice", reconsent)


def decide(policy: Policy, signals: Signals, *, compatible: frozenset[str] | None = None) -> Decision:
    """Decide every purpose of the policy."""
    versions = compatible if compatible is not None else compatible_versions(policy)
    return Decision(
        purposes={name: decide_purpose(name, p, signals, versions) for name, p in policy.purposes.items()},
        policy_version=policy.policy.version,
    )
