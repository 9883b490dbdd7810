"""The human-readable disclosure, generated from the policy the middleware enforces.

A shop's privacy notice and its enforced policy drift apart when they are written twice; rendering
the notice from the policy file means what the shop says is what the middleware does. The document
is built once as plain sections and tables, then written as Markdown or HTML, with every piece of
policy text escaped for the chosen format.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .schema import Policy, Purpose
from .transforms import OUTPUT_TRANSFORMS

Format = Literal["md", "html"]

LEGAL_BASES = {
    "contract": "performance of a contract with you",
    "legal_obligation": "a legal obligation",
    "legitimate_interest": "our legitimate interests",
    "consent": "your consent",
    "vital_interest": "protection of vital interests",
    "public_task": "a task in the public interest",
}
MECHANISMS = {
    "opt_in": "only after you opt in",
    "opt_out": "on unless you opt out",
    "notice": "on, with notice",
    "none": "no choice needed",
}
TRANSFORMS = {name: transform.says for name, transform in OUTPUT_TRANSFORMS.items()}
COOKIE_CLASSES = {
    "essential": "Essential",
    "functional": "Functional",
    "analytics": "Analytics / performance",
    "advertising": "Advertising / marketing",
    "": "Other",
}


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: Table | None = None
    items: list[str] = field(default_factory=list)


def _basis(name: str) -> str:
    return LEGAL_BASES.get(name, name)


def _choice(purpose: Purpose) -> str:
    """How the customer chooses; consent as a legal basis means opt-in, as the consent layer decides."""
    if purpose.consent == "none" and purpose.legal_basis == "consent":
        return MECHANISMS["opt_in"]
    return MECHANISMS[purpose.consent]


def _sections(policy: Policy, mount_path: str) -> list[Section]:
    info = policy.policy
    base = mount_path.rstrip("/")
    out: list[Section] = []

    about = [f"Version {info.version}, effective {info.effective_date.isoformat()}."]
    if info.controller:
        about.append(f"Controller: {info.controller}.")
    if info.contact:
        about.append(f"Contact: {info.contact}.")
    about.append(
        "This notice is generated from the policy file the privacy middleware enforces; the "
        f"machine-readable form and the history of enforced versions are served at GET {base}/policy."
    )
    out.append(Section("About this notice", about))

    collected = [(n, c) for n, c in policy.categories.items() if not c.forbidden]
    out.append(
        Section(
            "Personal data we process",
            table=Table(
                ["Category", "What it is", "Sensitive"],
                [[n, c.description, "yes" if c.sensitive else "no"] for n, c in collected],
            ),
        )
    )
    forbidden = [(n, c) for n, c in policy.categories.items() if c.forbidden]
    if forbidden:
        out.append(
            Section(
                "Data we never collect",
                ["Requests that carry these are refused before they reach the shop."],
                items=[f"{n}: {c.description}" if c.description else n for n, c in forbidden],
            )
        )

    out.append(
        Section(
            "Why we process it",
            table=Table(
                ["Purpose", "Description", "Legal basis", "Your choice"],
                [
                    [
                        n,
                        p.description,
                        _basis(p.legal_basis),
                        _choice(p) + (" (a Global Privacy Control signal opts you out)" if p.gpc_opt_out else ""),
                    ]
                    for n, p in policy.purposes.items()
                ],
            ),
        )
    )

    recipient_rows = []
    for name, recipient in policy.recipients.items():
        receives = (
            "; ".join(f"{c}: {TRANSFORMS.get(t, t)}" for c, t in recipient.sees.items() if t != "drop")
            or "no personal data"
        )
        recipient_rows.append([name, recipient.description, ", ".join(recipient.purposes), receives])
    out.append(
        Section(
            "Who receives it",
            [
                "Each recipient receives only what is listed for it; everything else is removed before data "
                "leaves. A party not listed here receives nothing."
            ],
            table=Table(["Recipient", "Who", "Purposes", "What it receives"], recipient_rows),
        )
    )

    retention_rows = [
        [r.category, f"{r.days} days", "anonymised" if r.action == "anonymise" else "deleted", r.reason]
        for r in policy.retention
    ]
    retention_rows.append(
        [
            "user.device.ip_address (login and security records)",
            f"{policy.audit.raw_ip_days} days",
            "deleted",
            "raw addresses in the audit trail",
        ]
    )
    retention_rows.append(
        ["audit events", f"{policy.audit.event_days} days", "deleted", "the record of who accessed your data"]
    )
    holds = [f"{h.category} is kept {h.days} days for {h.purpose}: {h.reason}" for h in policy.rights.legal_holds]
    out.append(
        Section(
            "How long we keep it",
            ["When the law makes us keep something you ask us to delete, we keep only that and anonymise the rest."]
            if holds
            else [],
            table=Table(["Data", "Kept for", "Then", "Why"], retention_rows),
            items=holds,
        )
    )

    cookie_rows = []
    for cookie in policy.tracking.cookies:
        purpose = policy.purposes[cookie.purpose]
        cookie_rows.append(
            [
                COOKIE_CLASSES[purpose.cookie_class],
                cookie.pattern,
                cookie.purpose,
                "always set" if _choice(purpose) == MECHANISMS["none"] else _choice(purpose),
            ]
        )
    order = list(COOKIE_CLASSES)
    cookie_rows.sort(key=lambda row: next(i for i, k in enumerate(order) if COOKIE_CLASSES[k] == row[0]))
    tracking = [
        f"{t.method} {t.path} ({t.purpose}): identifiers are "
        + ", ".join(
            filter(
                None,
                [
                    "pseudonymised" if t.pseudonymise else "",
                    "removed" if t.drop else "",
                    "IP addresses shortened to the network" if t.truncate_ip else "",
                ],
            )
            or "kept"
        )
        for t in policy.tracking.routes
    ]
    out.append(
        Section(
            "Cookies and tracking",
            [f"Set or withdraw your choices at {base}/consent; withdrawing expires the cookies it covered."],
            table=Table(["Class", "Cookie", "Purpose", "Set"], cookie_rows),
            items=tracking,
        )
    )

    security = []
    if policy.audit.logins:
        security.append(
            "Logins are recorded (time, outcome, network) to protect your account; repeated "
            "failures block further attempts for a while."
        )
    security.append(f"Every disclosure of your data to a recipient is logged; see it at GET {base}/me/access-log.")
    if policy.minors.minimum_age:
        security.append(f"You must be at least {policy.minors.minimum_age} years old to register.")
    out.append(Section("Security and accountability", security))

    deadline = f"{policy.rights.deadline_days} {'working ' if policy.rights.working_days else ''}days"
    out.append(
        Section(
            "Your rights and how to exercise them",
            [f"Signed in, you can use these requests directly; we complete them within {deadline}."],
            table=Table(
                ["Right", "How"],
                [
                    ["Access and a copy (portability)", f"GET {base}/me/export"],
                    ["Send the copy to another provider", f"POST {base}/me/export/transfer"],
                    ["Correction", f"POST {base}/me/rectification"],
                    ["Deletion", f"POST {base}/me/erasure"],
                    ["Restriction of processing", f"POST {base}/me/restriction (DELETE to lift it)"],
                    ["Objection", f"POST {base}/me/objection"],
                    ["Consent: see, give, withdraw", f"GET, PUT, DELETE {base}/consent"],
                    ["Your consent history", f"GET {base}/consent/history"],
                    ["Who accessed your data", f"GET {base}/me/access-log"],
                    ["Your open requests", f"GET {base}/me/requests"],
                ],
            ),
        )
    )

    history = [[info.version, info.effective_date.isoformat(), "current version"]]
    history += [[h.version, h.effective_date.isoformat(), h.summary] for h in policy.policy.previous_versions]
    out.append(Section("Version history", table=Table(["Version", "Effective", "Changes"], history)))
    return out


# -- Markdown ------------------------------------------------------------------------------------

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]{}#|!"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


_MD_BLOCK_START = re.compile(r"^(?:[-+=]|\d+[.)])")


def _md(text: str) -> str:
    """Policy text as literal Markdown: no markup, links or raw HTML can be smuggled in."""
    escaped = " ".join(text.split()).translate(_MD_SPECIAL)
    if _MD_BLOCK_START.match(escaped):  # would start a list, heading underline or ordered item
        escaped = "\\" + escaped
    return escaped


def _md_lines(policy: Policy, sections: Iterable[Section]) -> list[str]:
    lines = [f"# {_md(policy.policy.name)}: privacy notice", ""]
    for section in sections:
        lines += [f"## {_md(section.title)}", ""]
        for paragraph in section.paragraphs:
            lines += [_md(paragraph), ""]
        if section.table is not None and section.table.rows:
            lines.append("| " + " | ".join(_md(h) for h in section.table.headers) + " |")
            lines.append("|" + "---|" * len(section.table.headers))
            lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in section.table.rows]
            lines.append("")
        if section.items:
            lines += [f"- {_md(item)}" for item in section.items]
            lines.append("")
    return lines


# -- HTML ----------------------------------------------------------------------------------------


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _html_lines(policy: Policy, sections: Iterable[Section]) -> list[str]:
    title = _h(policy.policy.name) + ": privacy notice"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><title>' + title + "</title></head>",
        "<body>",
        f"<h1>{title}</h1>",
    ]
    for section in sections:
        lines.append(f"<section><h2>{_h(section.title)}</h2>")
        lines += [f"<p>{_h(p)}</p>" for p in section.paragraphs]
        if section.table is not None and section.table.rows:
            lines.append(
                "<table><thead><tr>"
                + "".join(f"<th>{_h(h)}</th>" for h in section.table.headers)
                + "</tr></thead><tbody>"
            )
            lines += ["<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in section.table.rows]
            lines.append("</tbody></table>")
        if section.items:
            lines.append("<ul>" + "".join(f"<li>{_h(item)}</li>" for item in section.items) + "</ul>")
        lines.append("</section>")
    lines += ["</body>", "</html>"]
    return lines


def render(policy: Policy, format: Format = "md", *, mount_path: str = "/privacy") -> str:
    """The disclosure for `policy` as Markdown (`md`) or a standalone HTML page (`html`)."""
    sections = _sections(policy, mount_path)
    if format == "md":
        return "\n".join(_md_lines(policy, sections)).rstrip() + "\n"
    if format == "html":
        return "\n".join(_html_lines(policy, sections)) + "\n"
    raise ValueError(f"unknown format {format!r}: use 'md' or 'html'")
