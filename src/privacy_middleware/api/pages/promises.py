"""The loaded policy's promises, each with what enforces it: the officer console's summary.

Derived from the same policy object the middleware compiled, so it lists what is enforced now,
not what a document says.
"""

from __future__ import annotations

from ...consent.decisions import mechanism, needs_choice
from ...policy.schema import Policy

TRANSFORMS = {
    "encrypt": "encrypted before the shop stores it",
    "encrypt_deterministic": "encrypted (searchable) before the shop stores it",
    "tokenise": "replaced by a token before the shop stores it",
    "strip": "removed before the shop sees it",
}


def _category(policy: Policy, name: str) -> str:
    """A category's description; a prefix (e.g. `user.contact`) is named by what it covers."""
    found = policy.categories.get(name)
    if found is not None and found.description:
        return found.description
    covered = [c.description or key for key, c in sorted(policy.categories.items()) if key.startswith(name + ".")]
    return ", ".join(covered) if covered else name


def promises(policy: Policy, mount: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []

    def add(promise: str, enforcement: str) -> None:
        rows.append({"promise": promise, "enforcement": enforcement})

    for name, purpose in sorted(policy.purposes.items()):
        if not needs_choice(purpose):
            continue
        how = {"opt_in": "only with consent", "opt_out": "unless the person objects", "notice": "with notice"}
        gates = [f"{r.method} {r.path}" for r in policy.tracking.routes if r.purpose == name]
        gates += [f"cookie {c.pattern}" for c in policy.tracking.cookies if c.purpose == name]
        gates += [f"outbound {h.host}" for h in policy.tracking.hosts if h.purpose == name]
        gpc = "; Global Privacy Control refuses it" if purpose.gpc_opt_out else ""
        add(
            f"{purpose.description or name}: {how[mechanism(purpose)]}{gpc}",
            "consent gate on " + (", ".join(gates) if gates else "the consent API") + f"; {mount}/consent",
        )
    for name, recipient in sorted(policy.recipients.items()):
        seen = ", ".join(f"{_category(policy, c)} ({t})" for c, t in sorted(recipient.sees.items())) or "nothing"
        where = ["responses to its tokens"]
        if recipient.hosts:
            where.append("outbound calls to " + ", ".join(recipient.hosts))
        add(
            f"{recipient.description or name} sees only: {seen}",
            "purpose-limited disclosure on " + " and ".join(where) + "; every disclosure audited",
        )
    for route in policy.routes:
        if route.request is None:
            continue
        for field in route.request.fields:
            verb = TRANSFORMS.get(field.transform)
            if verb is not None:
                add(f"{_category(policy, field.category)}: {verb}", f"field engine on {route.method} {route.path}")
    forbidden = [_category(policy, n) for n, c in sorted(policy.categories.items()) if c.forbidden]
    if forbidden:
        add("Never collected: " + ", ".join(forbidden), "minimisation guard refuses requests carrying them")
    if policy.minors.minimum_age:
        add(
            f"No accounts under {policy.minors.minimum_age}",
            "age check on " + ", ".join(f"{r.method} {r.path}" for r in policy.minors.routes),
        )
    for rule in policy.retention:
        add(
            f"{_category(policy, rule.category)} kept {rule.days} days ({rule.action})",
            "retention runner (periodic maintenance)",
        )
    add(
        f"Data-subject requests answered within {policy.rights.deadline_days} days",
        "request queue with due dates, overdue first (this console)",
    )
    for hold in policy.rights.legal_holds:
        add(f"{_category(policy, hold.category)} kept {hold.days} days: {hold.reason}", "legal hold applied on erasure")
    if policy.audit.logins:
        add(
            "Sign-ins are protected and recorded",
            "login audit and lockout on " + ", ".join(f"{r.method} {r.path}" for r in policy.audit.logins),
        )
    add("Every disclosure and change is recorded, tamper-evident", "signed audit chain (status below)")
    unique: dict[tuple[str, str], dict[str, str]] = {(r["promise"], r["enforcement"]): r for r in rows}
    return list(unique.values())
