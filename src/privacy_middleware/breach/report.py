"""Incident report: whose data a principal or recipient received, and the GDPR notification drafts.

Built from the audit trail alone. A disclosure's form (ciphertext, masked or clear) follows from
the policy's grants for the recipient and categories it names (the policy loaded now: run the
report with the policy version in force at the time when it has changed since).
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from ..audit.events import parse_time
from ..audit.query import MAX_LIMIT, search
from ..errors import PrivacyError
from ..fields.engine import Viewer
from ..policy.schema import Policy
from ..store import Database
from ..store.audit import audit_events
from .facts import ACCESS_PREFIX, Access, access_from

NOTIFY_WITHIN = timedelta(hours=72)

CONSEQUENCES = (
    ("user.financial", "fraudulent payments or card misuse"),
    ("user.government_id", "identity theft"),
    ("user.contact.address", "unwanted contact at home, burglary or parcel fraud"),
    ("user.contact", "phishing, spam and social-engineering attempts"),
    ("user.demographic", "profiling and identity fraud"),
    ("user.name", "being targeted by name in phishing"),
    ("user.behavior", "profiling of habits and interests"),
)


@dataclass(slots=True)
class Disclosure:
    time: str
    action: str
    principal: str | None
    recipient: str | None
    route: str | None
    network: str | None
    subjects: int
    categories: list[str]
    form: str  # ciphertext | masked | clear | mixed


@dataclass(slots=True)
class IncidentReport:
    window_from: str
    window_to: str
    scope: dict[str, str | None]
    subjects: dict[str, Any]
    records: int
    categories: list[str]
    recipients: list[str]
    principals: list[str]
    first_access: str | None
    last_access: str | None
    forms: dict[str, int]
    disclosures: list[Disclosure]
    findings: list[dict[str, Any]]
    measures: list[str]
    detected_at: str | None
    notify_by: str | None
    article_33: str = ""
    article_34: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="seconds")


def form_of(policy: Policy, access: Access) -> str:
    """How the categories left: ciphertext, masked (mask, generalise, pseudonymise) or clear."""
    declared = policy.recipients.get(access.recipient or "")
    if declared is None:
        return "clear"  # the subject themself, an export to them, or an undeclared viewer
    viewer = Viewer(None, access.recipient or "", dict(declared.sees))
    forms = set()
    for category in access.categories:
        transform = viewer.transform_for(category)
        if transform == "ciphertext":
            forms.add("ciphertext")
        elif transform == "keep":
            forms.add("clear")
        elif transform != "drop":
            forms.add("masked")
    if not forms:
        return "clear"
    return forms.pop() if len(forms) == 1 else "mixed"


async def _finding(database: Database, uid: str) -> dict[str, Any]:
    async with database.connect() as conn:
        row = (await conn.execute(sa.select(audit_events.c.leaf).where(audit_events.c.uid == uid))).first()
    if row is None or row.leaf is None:
        raise PrivacyError("unknown_finding", "No finding with this id is in the audit trail.", 404)
    doc = orjson.loads(row.leaf)
    if not str(doc.get("kind", "")).startswith("detection_finding."):
        raise PrivacyError("unknown_finding", "This id names an audit event that is not a finding.", 404)
    return dict(doc)


async def build_report(
    database: Database,
    policy: Policy,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    principal: str | None = None,
    recipient: str | None = None,
    finding: str | None = None,
    now: datetime | None = None,
) -> IncidentReport:
    now = now or datetime.now(UTC)
    if finding is not None:
        doc = await _finding(database, finding)
        related = doc.get("detail", {}).get("related", {})
        principal = principal or related.get("principal")
        recipient = recipient or (None if principal else related.get("recipient"))
        found_at = parse_time(doc["time"])
        since = since or found_at - timedelta(seconds=policy.breach.window_seconds)
        until = until or now
    until = until or now
    since = since or until - timedelta(days=1)
    if since >= until:
        raise PrivacyError("invalid_window", "--from must be before --to.", 400)

    subjects: set[str] = set()
    categories: set[str] = set()
    recipients: set[str] = set()
    principals: set[str] = set()
    forms: dict[str, int] = {}
    disclosures: list[Disclosure] = []
    records = 0
    first = last = None
    cursor: int | None = None
    while True:
        page = await search(
            database, kinds=[ACCESS_PREFIX + "*"], since=since, until=until, after_seq=cursor, limit=MAX_LIMIT
        )
        if not page:
            break
        for record in page:
            cursor = record.seq
            access = access_from(record.document) if record.document else None
            if access is None or access.own:
                continue
            if principal is not None and access.principal != principal:
                continue
            if recipient is not None and access.recipient != recipient:
                continue
            form = form_of(policy, access)
            forms[form] = forms.get(form, 0) + 1
            subjects.update(access.subjects)
            categories.update(access.categories)
            records += access.records
            if access.recipient:
                recipients.add(access.recipient)
            if access.principal:
                principals.add(access.principal)
            first = access.time_us if first is None else min(first, access.time_us)
            last = access.time_us if last is None else max(last, access.time_us)
            disclosures.append(
                Disclosure(
                    time=_iso(access.time_us),
                    action=access.action,
                    principal=access.principal,
                    recipient=access.recipient,
                    route=access.route,
                    network=access.network,
                    subjects=len(access.subjects),
                    categories=list(access.categories),
                    form=form,
                )
            )
        if len(page) < MAX_LIMIT:
            break

    findings, measures = await _findings_and_measures(database, since, until, principal, recipient)
    detected = min((f["time"] for f in findings), default=None)
    report = IncidentReport(
        window_from=since.isoformat(timespec="seconds"),
        window_to=until.isoformat(timespec="seconds"),
        scope={"principal": principal, "recipient": recipient, "finding": finding},
        subjects={"count": len(subjects), "ids": sorted(subjects)},
        records=records,
        categories=sorted(categories),
        recipients=sorted(recipients),
        principals=sorted(principals),
        first_access=_iso(first) if first is not None else None,
        last_access=_iso(last) if last is not None else None,
        forms=forms,
        disclosures=disclosures,
        findings=findings,
        measures=measures,
        detected_at=detected,
        notify_by=(parse_time(detected) + NOTIFY_WITHIN).isoformat(timespec="seconds") if detected else None,
        notes=["Disclosure forms follow from the policy loaded now and the recipient's grants."],
    )
    report.article_33 = article_33(policy, report, now)
    report.article_34 = article_34(policy, report)
    return report


async def _findings_and_measures(
    database: Database, since: datetime, until: datetime, principal: str | None, recipient: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    findings: list[dict[str, Any]] = []
    measures: list[str] = []
    cursor: int | None = None
    while True:
        page = await search(
            database,
            kinds=["detection_finding.", "api_activity.containment_*"],
            since=since,
            until=until + timedelta(days=3),
            after_seq=cursor,
            limit=MAX_LIMIT,
        )
        for record in page:
            cursor = record.seq
            doc = record.document or {}
            detail = doc.get("detail", {})
            if record.kind.startswith("api_activity.containment_"):
                target = (detail.get("target_kind"), detail.get("target"))
                if (principal is None and recipient is None) or target in {
                    ("principal", principal),
                    ("recipient", recipient),
                }:
                    verb = "suspended" if record.kind.endswith("suspend") else "restored"
                    measures.append(
                        f"{record.time.isoformat(timespec='seconds')}: access of {target[0]} {target[1]} {verb}"
                    )
                continue
            related = detail.get("related", {})
            if principal is not None and related.get("principal") != principal:
                continue
            if recipient is not None and related.get("recipient") != recipient:
                continue
            if "principal" not in related and "recipient" not in related:
                continue  # login lockouts and the like are not access findings
            findings.append(
                {
                    "id": doc.get("uid"),
                    "time": doc.get("time"),
                    "finding": detail.get("finding"),
                    "title": detail.get("title"),
                    "severity_id": doc.get("severity_id"),
                    "related": related,
                }
            )
        if len(page) < MAX_LIMIT:
            break
    return findings, measures


def _consequences(categories: list[str]) -> list[str]:
    found = []
    for prefix, consequence in CONSEQUENCES:
        if any(c == prefix or c.startswith(prefix + ".") for c in categories) and consequence not in found:
            found.append(consequence)
    return found or ["limited: no category with a known direct risk was disclosed"]


def article_33(policy: Policy, report: IncidentReport, now: datetime) -> str:
    info = policy.policy
    who = ", ".join(report.principals) or "unknown"
    hours = ""
    if report.notify_by:
        left = datetime.fromisoformat(report.notify_by) - now
        hours = f" ({max(0, int(left.total_seconds() // 3600))} hours left)"
    clear = report.forms.get("clear", 0) + report.forms.get("mixed", 0)
    measures = report.measures or ["none recorded yet"]
    lines = [
        "DRAFT - Notification of a personal data breach to the supervisory authority (GDPR Art. 33)",
        "",
        f"Controller: {info.controller or info.name}; contact point: {info.contact or 'to be completed'}",
        f"Detected: {report.detected_at or 'not by an automatic finding'}; "
        f"notify by: {report.notify_by or 'within 72 hours of becoming aware'}{hours}",
        "",
        "(a) Nature of the breach: personal data disclosed to "
        f"{', '.join(report.recipients) or 'an unauthorised party'} through the account(s) {who}, "
        f"between {report.first_access or report.window_from} and {report.last_access or report.window_to}.",
        f"    Categories of data subjects: customers. Approximate number of data subjects: {report.subjects['count']}.",
        f"    Categories of personal data: {', '.join(report.categories) or 'none found'}.",
        f"    Approximate number of records: {report.records}; {clear} of {len(report.disclosures)} disclosures were "
        "in clear (not encrypted).",
        f"(b) Contact point for more information: {info.contact or 'the data protection officer'}.",
        f"(c) Likely consequences: {'; '.join(_consequences(report.categories))}.",
        "(d) Measures taken or proposed: " + "; ".join(measures) + ".",
        "",
        "Where not all information is available yet, it may be provided in phases (Art. 33(4)).",
    ]
    return "\n".join(lines) + "\n"


def article_34(policy: Policy, report: IncidentReport) -> str:
    info = policy.policy
    kinds = ", ".join(c.removeprefix("user.").replace(".", " ") for c in report.categories) or "some of your data"
    lines = [
        "DRAFT - Notice to the people affected (GDPR Art. 34)",
        "",
        "Dear customer,",
        "",
        f"between {report.first_access or report.window_from} and {report.last_access or report.window_to}, "
        f"some of your personal data held by {info.controller or info.name} was accessed without authorisation: "
        f"{kinds}.",
        f"This could lead to {'; '.join(_consequences(report.categories))}.",
        "What we have done: " + ("; ".join(report.measures) or "we stopped the access and are investigating") + ".",
        "What you can do: be wary of messages that mention your order or ask for payment details, and tell us "
        "about anything suspicious.",
        f"Contact: {info.contact or 'our data protection officer'}.",
    ]
    return "\n".join(lines) + "\n"


def render_markdown(report: IncidentReport) -> str:
    lines = [
        "# Incident report",
        "",
        f"Window: {report.window_from} to {report.window_to}; scope: "
        + ", ".join(f"{k} {v}" for k, v in report.scope.items() if v)
        or "everything",
        "",
        f"- Affected subjects: **{report.subjects['count']}**",
        f"- Records: {report.records}",
        f"- Categories: {', '.join(report.categories) or '-'}",
        f"- Recipients: {', '.join(report.recipients) or '-'}; principals: {', '.join(report.principals) or '-'}",
        f"- First access: {report.first_access or '-'}; last access: {report.last_access or '-'}",
        f"- Forms: {', '.join(f'{k} {v}' for k, v in sorted(report.forms.items())) or '-'}",
        f"- Detected: {report.detected_at or '-'}; notify the authority by: {report.notify_by or '-'}",
        "",
        "## Findings",
        "",
        *[
            f"- {f['time']} {f['finding']} (severity {f['severity_id']}): {f['title']} [{f['id']}]"
            for f in report.findings
        ],
        "",
        "## Measures",
        "",
        *[f"- {m}" for m in report.measures],
        "",
        "## Disclosures",
        "",
        "| time | action | principal | recipient | route | subjects | form |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {d.time} | {d.action} | {d.principal or ''} | {d.recipient or ''} | {d.route or ''} "
            f"| {d.subjects} | {d.form} |"
            for d in report.disclosures
        ],
        "",
        "## Affected subjects",
        "",
        *[f"- {s}" for s in report.subjects["ids"]],
        "",
        "## Art. 33 notification (draft)",
        "",
        "```text",
        report.article_33.rstrip("\n"),
        "```",
        "",
        "## Art. 34 notice (draft)",
        "",
        "```text",
        report.article_34.rstrip("\n"),
        "```",
    ]
    return "\n".join(lines) + "\n"


def render_html(report: IncidentReport) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(d.time)}</td><td>{e(d.action)}</td><td>{e(d.principal or '')}</td>"
        f"<td>{e(d.recipient or '')}</td><td>{e(d.route or '')}</td><td>{d.subjects}</td><td>{e(d.form)}</td></tr>"
        for d in report.disclosures
    )
    subjects = "".join(f"<li>{e(s)}</li>" for s in report.subjects["ids"])
    findings = "".join(
        f"<li>{e(str(f['time']))} {e(str(f['finding']))} (severity {f['severity_id']}): {e(str(f['title']))}</li>"
        for f in report.findings
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Incident report</title>"
        f"<h1>Incident report</h1><p>Window {e(report.window_from)} to {e(report.window_to)}</p>"
        f"<ul><li>Affected subjects: <strong>{report.subjects['count']}</strong></li>"
        f"<li>Records: {report.records}</li><li>Categories: {e(', '.join(report.categories))}</li>"
        f"<li>Recipients: {e(', '.join(report.recipients))}</li>"
        f"<li>First access: {e(report.first_access or '-')}; last: {e(report.last_access or '-')}</li>"
        f"<li>Notify the authority by: {e(report.notify_by or '-')}</li></ul>"
        f"<h2>Findings</h2><ul>{findings}</ul>"
        "<h2>Disclosures</h2><table><tr><th>time<th>action<th>principal<th>recipient<th>route<th>subjects<th>form</tr>"
        f"{rows}</table><h2>Affected subjects</h2><ul>{subjects}</ul>"
        f"<h2>Art. 33 notification (draft)</h2><pre>{e(report.article_33)}</pre>"
        f"<h2>Art. 34 notice (draft)</h2><pre>{e(report.article_34)}</pre></html>\n"
    )
