"""Read and validate a policy file; every problem is reported with the file, key path and reason."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from ..errors import ConfigError
from .access import grant_for
from .schema import CATEGORY_RE, NAME_RE, Policy
from .selectors import SelectorError, compile_selector
from .transforms import OUTPUT_TRANSFORMS

PATH_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::path)?\}")


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '<root>'}: {self.reason}"


class PolicyError(ConfigError):
    """The policy file is invalid; `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(f"invalid policy ({len(issues)} problem{'s' if len(issues) != 1 else ''}):\n{lines}")


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            out += (("." if out else "") + text) if NAME_RE.match(text) or text.isidentifier() else f'["{text}"]'
    return out


def load_policy(path: str | Path) -> Policy:
    """Load, validate and cross-check a policy file. Raises PolicyError listing every problem."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError([PolicyIssue(file, "", f"cannot read file ({exc.strerror or exc})")]) from None
    return parse_policy(raw, file=file)


def parse_policy(raw: bytes | str, *, file: str = "<policy>") -> Policy:
    text = raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else raw
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([PolicyIssue(file, "", f"not valid TOML: {exc}")]) from None
    return validate_policy(data, file=file)


def validate_policy(data: dict[str, Any], *, file: str = "<policy>") -> Policy:
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        issues = [PolicyIssue(file, _loc(err["loc"]), err["msg"]) for err in exc.errors()]
        raise PolicyError(issues) from None
    issues = [PolicyIssue(file, path, reason) for path, reason in cross_check(policy)]
    if issues:
        raise PolicyError(issues)
    return policy


def category_known(policy: Policy, name: str) -> bool:
    """A category or a prefix of one (so a recipient can be granted `user.contact`)."""
    return name in policy.categories or any(c.startswith(name + ".") for c in policy.categories)


def cross_check(policy: Policy) -> list[tuple[str, str]]:
    """Checks that span sections: every name used is declared, every selector compiles."""
    problems: list[tuple[str, str]] = []
    purposes = policy.purposes
    recipients = policy.recipients

    def need_purpose(path: str, name: str) -> None:
        if name and name not in purposes:
            problems.append((path, f"unknown purpose {name!r} (declared: {', '.join(sorted(purposes))})"))

    def need_category(path: str, name: str) -> None:
        if not category_known(policy, name):
            problems.append((path, f"unknown category {name!r}"))

    def need_selector(path: str, source: str) -> None:
        try:
            compile_selector(source)
        except SelectorError as exc:
            problems.append((path, str(exc)))

    def need_template(path: str, template: str) -> None:
        stripped = PATH_PARAM_RE.sub("", template)
        if "{" in stripped or "}" in stripped:
            problems.append((path, f"bad path template {template!r}: use {{name}} for parameters"))

    for name in policy.categories:
        if not CATEGORY_RE.match(name):
            problems.append((f'categories["{name}"]', "category names are dotted lower-case words"))
    for name in purposes:
        if not NAME_RE.match(name):
            problems.append((f'purposes["{name}"]', "purpose names are lower-case words with _"))
    for name, recipient in recipients.items():
        base = f"recipients.{name}"
        if not NAME_RE.match(name):
            problems.append((base, "recipient names are lower-case words with _"))
        if not recipient.purposes:
            problems.append((f"{base}.purposes", "a recipient acts for at least one purpose"))
        for i, purpose in enumerate(recipient.purposes):
            need_purpose(f"{base}.purposes[{i}]", purpose)
        for j, endpoint in enumerate(recipient.endpoints):
            need_template(f"{base}.endpoints[{j}].path", endpoint.path)
            if not recipient.hosts:
                problems.append((f"{base}.endpoints[{j}]", "endpoints need the recipient's hosts"))
            rules = endpoint.request
            if rules.shape and rules.shape not in policy.shapes:
                problems.append((f"{base}.endpoints[{j}].request.shape", f"unknown shape {rules.shape!r}"))
            need_selector(f"{base}.endpoints[{j}].request.records", rules.records)
            for k, rule in enumerate(rules.fields):
                need_selector(f"{base}.endpoints[{j}].request.fields[{k}].select", rule.select)
                need_category(f"{base}.endpoints[{j}].request.fields[{k}].category", rule.category)
        for category, transform in recipient.sees.items():
            need_category(f'{base}.sees["{category}"]', category)
            if transform not in OUTPUT_TRANSFORMS:
                problems.append(
                    (
                        f'{base}.sees["{category}"]',
                        f"unknown transform {transform!r} (one of: {', '.join(sorted(OUTPUT_TRANSFORMS))})",
                    )
                )
    for scope, recipient_name in policy.identity.scope_recipients.items():
        if recipient_name not in recipients:
            problems.append((f'identity.scope_recipients["{scope}"]', f"unknown recipient {recipient_name!r}"))

    for name, shape in policy.shapes.items():
        base = f"shapes.{name}"
        if shape.subject:
            need_selector(f"{base}.subject", shape.subject)
        if shape.record_key:
            need_selector(f"{base}.record_key", shape.record_key)
        for j, selector in enumerate(shape.personal_objects):
            need_selector(f"{base}.personal_objects[{j}]", selector)
        for j, rule in enumerate(shape.fields):
            need_selector(f"{base}.fields[{j}].select", rule.select)
            need_category(f"{base}.fields[{j}].category", rule.category)

    seen_routes: dict[tuple[str, str], str] = {}
    for i, route in enumerate(policy.routes):
        base = f"routes[{i}]"
        need_template(f"{base}.path", route.path)
        key = (route.method, PATH_PARAM_RE.sub("{}", route.path))
        if key in seen_routes:
            problems.append((base, f"duplicate route {route.method} {route.path} (also {seen_routes[key]})"))
        seen_routes[key] = base
        need_purpose(f"{base}.purpose", route.purpose)
        for side in ("request", "response"):
            rules = getattr(route, side)
            if rules is None:
                continue
            if rules.shape and rules.shape not in policy.shapes:
                problems.append((f"{base}.{side}.shape", f"unknown shape {rules.shape!r}"))
            need_selector(f"{base}.{side}.records", rules.records)
            if rules.subject:
                need_selector(f"{base}.{side}.subject", rules.subject)
            for j, selector in enumerate(rules.personal_objects):
                need_selector(f"{base}.{side}.personal_objects[{j}]", selector)
            for j, rule in enumerate(rules.fields):
                need_selector(f"{base}.{side}.fields[{j}].select", rule.select)
                need_category(f"{base}.{side}.fields[{j}].category", rule.category)
                if side == "response" and rule.transform != "keep":
                    problems.append(
                        (
                            f"{base}.{side}.fields[{j}].transform",
                            "response fields are classified only; what leaves is decided per recipient",
                        )
                    )
                if rule.companions and rule.validate_as != "card_number":
                    problems.append((f"{base}.{side}.fields[{j}].companions", "companions apply to card numbers only"))
        for j, free_text in enumerate(route.free_text):
            need_selector(f"{base}.free_text[{j}].select", free_text.select)

    for i, tracked in enumerate(policy.tracking.routes):
        need_template(f"tracking.routes[{i}].path", tracked.path)
        need_purpose(f"tracking.routes[{i}].purpose", tracked.purpose)
        for field in ("pseudonymise", "truncate_ip", "drop"):
            for j, selector in enumerate(getattr(tracked, field)):
                need_selector(f"tracking.routes[{i}].{field}[{j}]", selector)
    for i, cookie in enumerate(policy.tracking.cookies):
        need_purpose(f"tracking.cookies[{i}].purpose", cookie.purpose)
    for i, host in enumerate(policy.tracking.hosts):
        need_purpose(f"tracking.hosts[{i}].purpose", host.purpose)
    for i, login in enumerate(policy.audit.logins):
        need_template(f"audit.logins[{i}].path", login.path)
    for i, account in enumerate(policy.audit.account_routes):
        need_template(f"audit.account_routes[{i}].path", account.path)
    for i, category in enumerate(policy.audit.strict_categories):
        need_category(f"audit.strict_categories[{i}]", category)
    for i, retention in enumerate(policy.retention):
        need_category(f"retention[{i}].category", retention.category)
        need_purpose(f"retention[{i}].purpose", retention.purpose)
    for i, hold in enumerate(policy.rights.legal_holds):
        need_category(f"rights.legal_holds[{i}].category", hold.category)
        need_purpose(f"rights.legal_holds[{i}].purpose", hold.purpose)
    for i, minors_route in enumerate(policy.minors.routes):
        need_template(f"minors.routes[{i}].path", minors_route.path)
        need_selector(f"minors.routes[{i}].birth_date", minors_route.birth_date)
    for section, entries in (("adapter.tables", policy.adapter.tables), ("adapter.models", policy.adapter.models)):
        for i, stored in enumerate(entries):
            if stored.shape and stored.shape not in policy.shapes:
                problems.append((f"{section}[{i}].shape", f"unknown shape {stored.shape!r}"))
            for j, category in enumerate(stored.categories):
                need_category(f"{section}[{i}].categories[{j}]", category)
    for i, checkout in enumerate(policy.guests.checkouts):
        need_template(f"guests.checkouts[{i}].path", checkout.path)
        need_selector(f"guests.checkouts[{i}].email", checkout.email)
        if checkout.capability:
            need_selector(f"guests.checkouts[{i}].capability", checkout.capability)
        if checkout.capability_location:
            location = f"guests.checkouts[{i}].capability_location"
            need_template(location, checkout.capability_location)
            names = set(PATH_PARAM_RE.findall(checkout.capability_location))
            if "capability" not in names and not policy.guests.capability_param:
                problems.append((location, "name the {capability} segment, or set guests.capability_param"))
    for i, order_route in enumerate(policy.guests.order_routes):
        need_template(f"guests.order_routes[{i}].path", order_route.path)
    problems.extend(_check_cards(policy, need_purpose, need_template))
    if policy.minors.routes and policy.minors.minimum_age == 0:
        problems.append(("minors.minimum_age", "set a minimum age for the routes listed in minors.routes"))
    return problems


def _check_cards(
    policy: Policy, need_purpose: Callable[[str, str], None], need_template: Callable[[str, str], None]
) -> list[tuple[str, str]]:
    """[cards]: payment routes answer a recipient granted the card category in full."""
    cards = policy.cards
    problems: list[tuple[str, str]] = []
    if (cards.unplanned == "tokenise" or cards.payment_routes) and not category_known(policy, cards.category):
        problems.append(("cards.category", f"unknown category {cards.category!r}"))
    for i, route in enumerate(cards.payment_routes):
        base = f"cards.payment_routes[{i}]"
        need_template(f"{base}.path", route.path)
        recipient = policy.recipients.get(route.recipient)
        if recipient is None:
            problems.append((f"{base}.recipient", f"unknown recipient {route.recipient!r}"))
        elif grant_for(recipient.sees, cards.category)[0] != "keep":
            problems.append(
                (f"{base}.recipient", f"recipients.{route.recipient}.sees does not grant {cards.category!r} in full")
            )
    for i, purpose in enumerate(cards.reveal):
        need_purpose(f"cards.reveal[{i}]", purpose)
        if not purpose:
            problems.append((f"cards.reveal[{i}]", "name a purpose"))
    return problems


def policy_document(policy: Policy) -> dict[str, Any]:
    """The machine-readable policy served at GET /privacy/policy."""
    return policy.model_dump(mode="json")


def policy_digest(policy: Policy) -> str:
    return hashlib.sha256(orjson.dumps(policy_document(policy), option=orjson.OPT_SORT_KEYS)).hexdigest()
