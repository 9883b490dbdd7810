"""Security events as OCSF 1.3 documents, pulled by a SIEM with a cursor over HTTP and the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from privacy_middleware.cli import main as cli
from support.demo import Demo
from support.ocsf import check_ocsf

pytestmark = pytest.mark.anyio


async def officer(demo: Demo) -> dict[str, str]:
    return {"authorization": f"Bearer {demo.shop.token({'sub': 'officer-1', 'scope': 'privacy:admin'})}"}


async def security_session(demo: Demo) -> None:
    _, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    for _ in range(11):  # ten failures, then the lockout
        await demo.client.post("/auth/login", json={"email": "ada@example.com", "password": "wrong password"})
    await demo.checkout(token)
    logistics = await demo.partner("logistics-co")
    await demo.client.get("/orders", headers={"authorization": f"Bearer {logistics}"})
    consent = await demo.client.put(
        "/privacy/consent", json={"purposes": {"analytics": True}}, headers={**auth, "x-privacy-consent": "1"}
    )
    assert consent.status_code == 200, consent.text
    assert (await demo.client.post("/privacy/me/erasure", json={}, headers=auth)).status_code in (200, 202)
    await demo.app.runtime.audit.flush()


async def test_security_events_pull_as_valid_ocsf_with_a_cursor(demo: Demo) -> None:
    await security_session(demo)
    headers = await officer(demo)
    first = await demo.client.get("/privacy/admin/audit/ocsf", params={"limit": 1000}, headers=headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["events"] and page["more"] is False
    for document in page["events"]:
        check_ocsf(document)
    kinds = {d["metadata"]["event_code"] for d in page["events"]}
    classes = {d["class_uid"] for d in page["events"]}
    assert {3002, 6003} <= classes
    assert any(k.startswith("authentication.logon") for k in kinds)  # logins
    assert any(k.startswith("api_activity.data_") for k in kinds)  # data access
    assert "api_activity.consent_change" in kinds  # consent changes
    assert any("erasure" in k or k == "api_activity.data_erase" for k in kinds)  # erasures
    assert any(c in classes for c in (3001, 2004))  # the lockout (account lock or detection)
    text = json.dumps(page)
    assert "ada@example.com" not in text and "198.51.100.20" not in text and "wrong password" not in text
    sequences = [d["metadata"]["sequence"] for d in page["events"]]
    assert sequences == sorted(sequences) and page["cursor"] >= sequences[-1]

    again = (
        await demo.client.get("/privacy/admin/audit/ocsf", params={"after": page["cursor"]}, headers=headers)
    ).json()
    # Only what happened since: the officer's own pull, which is itself a security event.
    assert [d["api"]["operation"] for d in again["events"]] == ["admin_read"]
    for document in again["events"]:
        check_ocsf(document)
    assert again["events"][0]["metadata"]["sequence"] > page["cursor"]


async def test_the_pull_needs_the_officer_scope_and_a_sound_cursor(demo: Demo) -> None:
    staff = {"authorization": f"Bearer {await demo.partner('staff')}"}
    assert (await demo.client.get("/privacy/admin/audit/ocsf", headers=staff)).status_code == 403
    bad = await demo.client.get("/privacy/admin/audit/ocsf", params={"after": "yesterday"}, headers=await officer(demo))
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_query"


async def test_cli_pulls_ocsf_lines_and_keeps_the_cursor(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await security_session(demo)
    settings = demo.app.runtime.settings
    monkeypatch.setenv("PRIVACY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PRIVACY_POLICY_FILE", str(settings.policy_file))
    cursor = tmp_path / "siem.cursor"
    capsys.readouterr()
    assert await asyncio.to_thread(cli, ["audit", "ocsf", "--cursor-file", str(cursor)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines
    for document in lines:
        check_ocsf(document)
    assert int(cursor.read_text()) == max(d["metadata"]["sequence"] for d in lines)
    assert await asyncio.to_thread(cli, ["audit", "ocsf", "--cursor-file", str(cursor)]) == 0
    assert capsys.readouterr().out == ""  # nothing new
    cursor.write_text("not a number\n")
    assert await asyncio.to_thread(cli, ["audit", "ocsf", "--cursor-file", str(cursor)]) == 1
    assert "does not hold a cursor" in capsys.readouterr().err


def test_the_schema_refuses_a_document_that_is_not_ocsf() -> None:
    document: dict[str, Any] = {
        "class_uid": 6003,
        "category_uid": 6,
        "activity_id": 2,
        "type_uid": 600302,
        "time": 1,
        "severity_id": 1,
        "metadata": {"version": "1.3.0", "product": {"name": "privacy-middleware"}},
        "actor": {"user": {"uid": "u"}},
        "api": {"operation": "data_reveal"},
        "src_endpoint": {"name": "unknown network"},
    }
    check_ocsf(document)
    for broken in ({"api": {}}, {"category_uid": 3}, {"ip": "198.51.100.20"}, {"src_endpoint": {}}):
        with pytest.raises(AssertionError):
            check_ocsf({**document, **broken})
