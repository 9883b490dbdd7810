"""Breach response on the demo shop served by uvicorn, driven over real HTTP like an attacker and
an officer would: bulk reads by a partner token, a canary order read by staff, the signed webhook
delivery, containment and the incident report."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from privacy_middleware.breach.sinks import verify_signature
from privacy_middleware.cli import main as cli
from privacy_middleware.demo.run import build_demo

from .conftest import WEBHOOK_SECRET, Receiver, policy_with, serve_in_thread

# The test's webhook receiver listens on loopback: the operator allows it (PRIVACY_OUTBOUND__ALLOW).
LOOPBACK_RECEIVER = {"allow": ["127.0.0.1/32"]}


@contextmanager
def served_demo(tmp_path: Path, breach_policy: str, **settings: Any) -> Iterator[tuple[httpx.Client, Any]]:
    app, shop = build_demo(
        tmp_path,
        policy_file=policy_with(tmp_path, breach_policy),
        audit={"retention_interval_seconds": 0},
        **settings,
    )
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, shop


def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRIVACY_POLICY_FILE", str(tmp_path / "policy.toml"))
    monkeypatch.setenv("PRIVACY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}")
    monkeypatch.setenv("PRIVACY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PRIVACY_KEYS", f"local://{tmp_path / 'keyring.json'}")


def seed_orders(tmp_path: Path, count: int) -> list[tuple[str, str]]:
    """(order id, customer id) pairs written straight into the shop's own database."""
    pairs = [(f"ord_{uuid.uuid4().hex[:12]}", f"cus_{uuid.uuid4().hex[:16]}") for _ in range(count)]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.executemany(
            "INSERT INTO orders (id, customer_id, document, created_at) VALUES (?, ?, ?, ?)",
            [
                (
                    order,
                    customer,
                    json.dumps(
                        {
                            "id": order,
                            "customer_id": customer,
                            "status": "paid",
                            "items": [{"sku": "TEA-001", "qty": 1}],
                            "shipping_address": {
                                "name": "Sam Sample",
                                "street": "1 Sample Street",
                                "city": "Leeds",
                                "postal_code": "LS1 1AA",
                                "country": "GB",
                                "phone": "+44 113 496 0000",
                            },
                        }
                    ),
                    now,
                )
                for order, customer in pairs
            ],
        )
    return pairs


def partner_token(client: httpx.Client, client_id: str) -> str:
    response = client.post("/partners/token", json={"client_id": client_id, "client_secret": "demo-partner-secret"})
    assert response.status_code == 200
    return str(response.json()["access_token"])


def wait_until(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    return check()


def findings(client: httpx.Client, shop: Any, name: str) -> list[dict[str, Any]]:
    officer = shop.token({"sub": "officer-1", "scope": "privacy:admin"})
    response = client.get(
        "/privacy/admin/audit/events",
        params={"kind": f"detection_finding.{name}", "limit": 100},
        headers={"authorization": f"Bearer {officer}"},
    )
    assert response.status_code == 200, response.text
    return [e["document"] for e in response.json()["events"]]


def test_partner_bulk_read_is_found_contained_and_reported_exactly(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = 'subjects_per_window = 100\ncontainment = "principal"'
    hook = {"webhook_url": receiver.url, "webhook_secret": WEBHOOK_SECRET}
    with served_demo(tmp_path, policy, breach=hook, outbound=LOOPBACK_RECEIVER) as (client, shop):
        orders = seed_orders(tmp_path, 500)
        token = partner_token(client, "logistics-co")
        auth = {"authorization": f"Bearer {token}"}
        statuses = []
        read: set[str] = set()
        for order, customer in orders:
            response = client.get(f"/orders/{order}", headers=auth)
            statuses.append(response.status_code)
            if response.status_code == 200:
                read.add(customer)
                assert response.json()["shipping_address"]["street"] == "1 Sample Street"
        first_refusal = statuses.index(403)
        # the threshold is crossed at the 101st subject; containment follows within the monitor's lag
        assert 100 < first_refusal < 500
        assert set(statuses[first_refusal:]) == {403}
        refused = client.get(f"/orders/{orders[0][0]}", headers=auth)
        assert refused.json()["code"] == "access_suspended"
        # another partner is not affected
        other = partner_token(client, "pay-co")
        assert client.get(f"/orders/{orders[0][0]}", headers={"authorization": f"Bearer {other}"}).status_code == 200

        [bulk] = wait_until(lambda: findings(client, shop, "bulk_volume"))
        related = bulk["detail"]["related"]
        assert related["principal"] == "logistics-co" and related["recipient"] == "logistics"
        assert related["subjects_in_window"] == 101 and related["threshold"] == 100
        assert bulk["severity_id"] == 4

        deliveries = receiver.wait_for(lambda d: d[0].get("privacy-event") == "finding", timeout=5)
        assert len([d for d in deliveries if b"bulk_volume" in d[1]]) == 1  # one incident, one finding
        headers, body, _ = deliveries[0]
        assert verify_signature(WEBHOOK_SECRET.encode(), body, headers["privacy-signature"])
        assert not verify_signature(b"another-secret-0123456789", body, headers["privacy-signature"])

        # The officer lifts the suspension through the admin API; the partner reads again.
        officer = {"authorization": f"Bearer {shop.token({'sub': 'officer-1', 'scope': 'privacy:admin'})}"}
        listed = client.get("/privacy/admin/breach/suspensions", headers=officer).json()["suspensions"]
        assert [(s["target_kind"], s["target"], s["reason"]) for s in listed] == [
            ("principal", "logistics-co", "bulk_volume")
        ]
        assert (
            client.delete("/privacy/admin/breach/suspensions/principal/logistics-co", headers=officer).status_code
            == 200
        )
        assert client.get(f"/orders/{orders[0][0]}", headers=auth).status_code == 200
        read.add(orders[0][1])
        lifted = client.get(
            "/privacy/admin/audit/events", params={"kind": "api_activity.containment_*"}, headers=officer
        )
        kinds = [e["kind"] for e in lifted.json()["events"]]
        assert kinds == ["api_activity.containment_suspend", "api_activity.containment_lift"]

        cli_env(monkeypatch, tmp_path)
        capsys.readouterr()
        assert cli(["incident", "report", "--principal", "logistics-co", "--json"]) == 0
        report = orjson.loads(capsys.readouterr().out)
        assert set(report["subjects"]["ids"]) == read
        assert report["subjects"]["count"] == len(read)
        assert report["recipients"] == ["logistics"]


def test_a_canary_order_read_by_staff_raises_a_critical_finding_and_a_webhook_within_a_second(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = {"webhook_url": receiver.url, "webhook_secret": WEBHOOK_SECRET}
    with served_demo(tmp_path, "", breach=hook, outbound=LOOPBACK_RECEIVER) as (client, shop):
        cli_env(monkeypatch, tmp_path)
        assert cli(["canary", "plant", "--url", str(client.base_url), "--count", "2", "--batch", "trap-1"]) == 0
        capsys.readouterr()
        assert cli(["canary", "list", "--json"]) == 0
        listed = orjson.loads(capsys.readouterr().out)
        assert sorted(r["kind"] for r in listed) == ["customer", "customer", "order", "order"]
        assert {r["batch"] for r in listed} == {"trap-1"}

        staff = partner_token(client, "staff")
        read_at = time.monotonic()
        response = client.get("/orders", headers={"authorization": f"Bearer {staff}"})
        assert response.status_code == 200
        orders = response.json()["orders"]
        assert len(orders) == 2 and all(o["shipping_address"]["city"] == "Testville" for o in orders)
        deliveries = receiver.wait_for(lambda d: b"canary_accessed" in d[1], timeout=5)
        assert deliveries, "no webhook delivery for the canary read"
        assert deliveries[0][2] - read_at < 1.0
        assert verify_signature(WEBHOOK_SECRET.encode(), deliveries[0][1], deliveries[0][0]["privacy-signature"])
        finding = orjson.loads(deliveries[0][1])["finding"]
        assert finding["severity_id"] == 5
        related = finding["detail"]["related"]
        assert related["principal"] == "staff-1" and related["recipient"] == "support"
        assert related["route"] == "GET /orders" and related["network"]
        assert len(related["canaries"]) >= 1  # per-subject events: the second canary is the same incident
        # the same caller reading the canaries again is the same incident: no second finding
        client.get(f"/orders/{orders[0]['id']}", headers={"authorization": f"Bearer {staff}"})
        time.sleep(0.8)
        assert len(findings(client, shop, "canary_accessed")) == 1

        capsys.readouterr()
        assert cli(["canary", "retire", "trap-1"]) == 0
        assert cli(["canary", "list"]) == 0
        assert "0 canary record(s)" in capsys.readouterr().out
