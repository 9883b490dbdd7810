"""The audit trail through the demo shop: lockout, access log, offline verification of an export."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.cli import main as cli
from support.demo import Demo

pytestmark = pytest.mark.anyio


def from_ip(demo: Demo, ip: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=demo.app, client=(ip, 40000)), base_url="http://shop")


async def login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"email": "ada@example.com", "password": password})


async def test_eleventh_failure_locks_account_and_ip_but_not_other_networks(demo: Demo) -> None:
    await demo.register()
    async with from_ip(demo, "203.0.113.5") as attacker, from_ip(demo, "198.51.100.9") as owner:
        statuses = [(await login(attacker, "wrong password")).status_code for _ in range(10)]
        assert statuses == [401] * 10
        locked = await login(attacker, "correct horse battery")
        assert locked.status_code == 429
        assert locked.json()["code"] == "too_many_attempts"
        assert int(locked.headers["retry-after"]) > 0
        assert (await login(owner, "correct horse battery")).status_code == 200


async def test_login_bodies_that_are_not_json_are_still_audited(demo: Demo) -> None:
    response = await demo.client.post(
        "/auth/login", content=b"\x00\x01garbage", headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 401
    await demo.app.runtime.audit.flush()
    [attempt] = await search(demo.app.runtime.database, kinds=["authentication.logon"])
    assert attempt.document is not None and attempt.document["status"] == "failure"
    assert "garbage" not in str(attempt.document)


async def test_customer_access_log_shows_the_logistics_read_of_their_address(demo: Demo) -> None:
    customer, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    await demo.client.post("/auth/login", json={"email": "ada@example.com", "password": "correct horse battery"})
    await demo.checkout(token)
    logistics = await demo.partner("logistics-co")
    await demo.client.get("/orders", headers={"authorization": f"Bearer {logistics}"})
    await demo.app.runtime.audit.flush()
    log = (await demo.client.get("/privacy/me/access-log", headers=auth)).json()
    assert log["subject"] == customer
    assert [entry["outcome"] for entry in log["logins"]] == ["success"]
    assert log["logins"][0]["network"] == "198.51.100.0/24"
    partner_reads = [d for d in log["disclosures"] if d["recipient"] == "logistics"]
    assert partner_reads and partner_reads[0]["purpose"] == "delivery"
    assert "user.contact.address.delivery.street" in partner_reads[0]["categories"]
    assert not any(c.startswith("user.financial") for c in partner_reads[0]["categories"])
    assert "Marylebone" not in str(log) and "198.51.100.20" not in str(log)


async def test_admin_search_needs_the_admin_scope(demo: Demo) -> None:
    staff = await demo.partner("staff")
    response = await demo.client.get("/privacy/admin/audit/events", headers={"authorization": f"Bearer {staff}"})
    assert response.status_code == 403


async def test_exported_trail_of_a_demo_session_verifies_offline(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, token = await demo.register()
    await demo.checkout(token)
    await login(demo.client, "wrong password")
    logistics = await demo.partner("logistics-co")
    await demo.client.get("/orders", headers={"authorization": f"Bearer {logistics}"})
    await demo.app.runtime.audit.flush()
    await demo.app.runtime.audit_log.checkpoint(demo.app.runtime.database, force=True)
    monkeypatch.setenv("PRIVACY_DATABASE_URL", demo.app.settings.database_url)
    out = tmp_path / "export"
    assert await asyncio.to_thread(cli, ["audit", "export", "--out", str(out)]) == 0
    public_key = tmp_path / "audit-public.pem"
    public_key.write_bytes(demo.app.runtime.audit_log.public_key_pem())
    assert cli(["audit", "verify", str(out), "--public-key", str(public_key)]) == 0
    exported = "".join(p.read_text(errors="replace") for p in out.iterdir() if p.is_file())
    for secret in ("4242424242424242", "Marylebone", "correct horse", "wrong password", "ada@example.com"):
        assert secret not in exported
    # One flipped byte in an event and the verifier says so (exit 1).
    events_file = next(p for p in out.iterdir() if p.name.startswith("events"))
    data = events_file.read_bytes()
    position = data.index(b"data_disclose") + len(b"data_")
    events_file.write_bytes(data[:position] + b"D" + data[position + 1 :])  # disclose -> Disclose
    assert cli(["audit", "verify", str(out), "--public-key", str(public_key)]) == 1
    _: Any = capsys.readouterr()


async def test_a_list_disclosed_to_a_partner_is_one_event_found_in_each_customers_access_log(demo: Demo) -> None:
    customers = []
    for email in ("ada@example.com", "grace@example.com", "alan@example.com"):
        customer, token = await demo.register(email=email)
        assert (await demo.checkout(token)).status_code in (200, 201)
        customers.append((customer, token))
    await demo.app.runtime.audit.flush()
    logistics = await demo.partner("logistics-co")
    response = await demo.client.get("/orders", headers={"authorization": f"Bearer {logistics}"})
    assert response.status_code == 200
    await demo.app.runtime.audit.flush()
    disclosures = await search(demo.app.runtime.database, kinds=["api_activity.data_disclose"])
    assert len(disclosures) == 1
    [event] = disclosures
    assert event.subject is None
    assert event.detail["subjects"] == sorted(c for c, _ in customers)
    assert event.detail["record_count"] == 3
    for customer, token in customers:
        log = (await demo.client.get("/privacy/me/access-log", headers={"authorization": f"Bearer {token}"})).json()
        partner = [d for d in log["disclosures"] if d["recipient"] is not None]
        assert [(d["recipient"], d["action"]) for d in partner] == [("logistics", "disclose")], customer
