"""The incident report from a trail written by hand: exactly the subjects in scope, the form of each
disclosure from the recipient's grants, the 72-hour clock, and the drafts in every format."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from privacy_middleware.audit import AuditLog
from privacy_middleware.audit.events import (
    SEVERITY_HIGH,
    AuditEvent,
    containment,
    data_access,
    detection_finding,
)
from privacy_middleware.breach.report import build_report, render_html, render_markdown
from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.policy.load import load_policy
from privacy_middleware.store import Database

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC).replace(microsecond=0)


def access(principal: str, recipient: str | None, subject: str, categories: list[str], minutes_ago: int) -> AuditEvent:
    return data_access(
        principal=principal,
        subject=subject,
        categories=categories,
        purpose="delivery",
        route="GET /orders/{order_id}",
        recipient=recipient,
        action="disclose" if recipient else "read",
        ip="198.51.100.4",
        time=NOW - timedelta(minutes=minutes_ago),
    )


async def test_report_scopes_subjects_forms_clock_and_drafts(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}")
    await database.upgrade()
    log = AuditLog(tmp_path / "key.pem", os.urandom(32))
    street = ["user.contact.address.delivery.street"]
    events = [
        access("logistics-co", "logistics", "cus_a", street, 50),
        access("logistics-co", "logistics", "cus_b", [*street, "user.contact.phone"], 40),
        access("stats-co", "analytics", "cus_c", ["user.id"], 30),  # another principal: not in scope
        access("cus_d", None, "cus_d", ["user.name"], 20),  # a customer's own read: never in a report
        access("logistics-co", "logistics", "cus_e", street, 60 * 30),  # before the window
        detection_finding(
            "bulk_volume",
            title="Far more subjects read than this caller's baseline",
            severity_id=SEVERITY_HIGH,
            related={"principal": "logistics-co", "recipient": "logistics"},
            time=NOW - timedelta(minutes=35),
        ),
        containment(
            "suspend",
            target_kind="principal",
            target="logistics-co",
            principal="breach-monitor",
            reason="bulk_volume",
            time=NOW - timedelta(minutes=34),
        ),
    ]
    await log.append(database, [log.seal(e) for e in events])
    policy = load_policy(demo_policy_path())
    try:
        report = await build_report(
            database, policy, since=NOW - timedelta(hours=2), until=NOW + timedelta(minutes=1), principal="logistics-co"
        )
        everyone = await build_report(database, policy, since=NOW - timedelta(hours=2), until=NOW)
        by_finding = await build_report(database, policy, finding=events[5].uid)
    finally:
        await database.dispose()
    assert report.subjects == {"count": 2, "ids": ["cus_a", "cus_b"]}
    assert report.records == 2 and report.recipients == ["logistics"] and report.principals == ["logistics-co"]
    assert report.categories == ["user.contact.address.delivery.street", "user.contact.phone"]
    assert report.forms == {"clear": 2}  # logistics is granted these categories with `keep`
    assert [f["finding"] for f in report.findings] == ["bulk_volume"]
    detected = datetime.fromisoformat(str(report.detected_at).replace("Z", "+00:00"))
    assert datetime.fromisoformat(str(report.notify_by)) - detected == timedelta(hours=72)
    assert report.measures and "suspended" in report.measures[0]
    assert "Approximate number of data subjects: 2" in report.article_33
    assert "phishing" in report.article_33 and "Dear customer" in report.article_34
    # analytics receives user.id pseudonymised: masked, not clear; the own read is left out
    assert everyone.subjects["ids"] == ["cus_a", "cus_b", "cus_c"]
    assert everyone.forms == {"clear": 2, "masked": 1}
    # from a finding: its principal, from one window before it until now
    assert by_finding.scope["principal"] == "logistics-co" and by_finding.subjects["ids"] == ["cus_a", "cus_b"]
    markdown = render_markdown(report)
    assert "Affected subjects: **2**" in markdown and "- cus_b" in markdown and "cus_c" not in markdown
    page = render_html(report)
    assert page.startswith("<!doctype html>") and "<li>cus_a</li>" in page and "Art. 34" in page
