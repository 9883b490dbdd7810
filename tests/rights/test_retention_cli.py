"""Retention runs and the operator's `dsar` / `retention` commands, on the demo shop's data."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from privacy_middleware.cli import main as cli
from privacy_middleware.demo.shop import events
from privacy_middleware.rights.adapter import ShopAdapterError
from privacy_middleware.rights.receipts import verify_erasure_receipt
from privacy_middleware.rights.retention import RetentionRunner, periodic_maintenance

pytestmark = pytest.mark.anyio


class Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)


async def old_events(rights: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    async with rights.demo.shop.engine.begin() as conn:
        for days in (500, 400, 40, 1):
            await conn.execute(
                events.insert().values(
                    document={"event": "page_view", "visitor_id": f"ps_{days}", "ip": "198.51.100.0"},
                    received_at=now - dt.timedelta(days=days),
                )
            )


async def remaining_events(rights: Any) -> list[dict[str, Any]]:
    async with rights.demo.shop.engine.connect() as conn:
        return [r.document for r in await conn.execute(sa.select(events.c.document).order_by(events.c.id))]


async def test_a_dry_run_reports_and_a_real_run_deletes_and_audits(rights: Any) -> None:
    await old_events(rights)
    sink = Sink()
    runner = RetentionRunner(rights.service.policy, rights.adapter, audit=sink)
    seen: list[tuple[str, int, int]] = []
    dry = await runner.run(dry_run=True, progress=lambda rule, done, total: seen.append((rule.category, done, total)))
    assert dry.dry_run and dry.found == 5 and dry.changed == 0 and sink.events == []
    assert len(await remaining_events(rights)) == 4
    assert seen == [("user.behavior.browsing", 0, 2), ("user.device.ip_address", 0, 3)]

    report = await runner.run()
    assert report.ok and report.changed == 3  # two events deleted, then the one older than 30 days loses its IP
    summary = report.to_json()
    assert [(r["category"], r["found"], r["changed"]) for r in summary["rules"]] == [
        ("user.behavior.browsing", 2, 2),
        ("user.device.ip_address", 1, 1),
    ]
    assert summary["rules"][0]["reason"] == "Browsing statistics are kept for 13 months"
    left = await remaining_events(rights)
    assert [e["visitor_id"] for e in left] == ["ps_40", "ps_1"]
    assert "ip" not in left[0] and left[1]["ip"] == "198.51.100.0"
    assert [e.kind for e in sink.events] == ["api_activity.data_erase"] * 3
    assert {e.detail["promise"] for e in sink.events} == {"retention_delete"}
    assert sorted(c for e in sink.events for c in e.detail["categories"]) == [
        "user.behavior.browsing",
        "user.behavior.browsing",
        "user.device.ip_address",
    ]
    again = await runner.run()
    assert again.found == 0 and again.changed == 0


class BrokenShop:
    name = "broken"

    async def expired(self, category: str, cutoff: dt.datetime) -> list[Any]:
        raise ShopAdapterError("the shop API timed out listing expired data", retryable=True)


async def test_a_failing_shop_is_reported_per_rule_and_the_periodic_task_keeps_going(rights: Any) -> None:
    runner = RetentionRunner(rights.service.policy, BrokenShop())  # type: ignore[arg-type]
    report = await runner.run()
    assert not report.ok
    assert {r.error for r in report.rules} == {"the shop API timed out listing expired data"}
    stop = asyncio.Event()
    calls: list[int] = []

    async def retry() -> None:
        calls.append(1)
        if len(calls) == 2:
            stop.set()

    await asyncio.wait_for(periodic_maintenance(runner, retry, interval=0.01, stop=stop), 5)
    assert len(calls) == 2


@pytest.fixture
def operator_env(rights: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = rights.demo.app.settings
    monkeypatch.setenv("PRIVACY_POLICY_FILE", str(settings.policy_file))
    monkeypatch.setenv("PRIVACY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PRIVACY_KEYS", settings.keys_url)
    monkeypatch.setenv("PRIVACY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PRIVACY_SHOP_ADAPTER", "demo")


async def test_operator_exports_and_erases_a_subject_from_the_command_line(
    rights: Any, operator_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    subject, token, order = await rights.customer_with_order()
    out = rights.demo.data_dir / "export.json"
    assert await asyncio.to_thread(cli, ["dsar", "export", subject, "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    document = orjson.loads(out.read_bytes())
    assert document["subject"] == subject
    assert document["shop"]["records"][1]["data"]["payment"]["card"]["number"] == "\u2022" * 12 + "4242"
    assert "2 shop records" in capsys.readouterr().out

    assert await asyncio.to_thread(cli, ["dsar", "erase", subject]) == 0
    printed = capsys.readouterr().out
    assert "1 anonymised" in printed and "Invoices are kept 10 years for tax law" in printed
    receipt = printed.split("receipt: ")[1].split()[0]
    key = rights.demo.data_dir / "rights-receipt-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    from privacy_middleware.keyfiles import load_or_create_signing_key

    assert verify_erasure_receipt(receipt, load_or_create_signing_key(key).public_key())["sub"] == subject
    assert await rights.adapter.records(subject) == []
    own = await rights.client.get(f"/orders/{order['id']}", headers=rights.auth(token))
    assert own.status_code == 404


async def test_operator_runs_retention_with_a_dry_run_first(
    rights: Any, operator_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    await old_events(rights)
    assert await asyncio.to_thread(cli, ["retention", "run", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "(dry run)" in printed and "5 item(s) past their period, 0 changed" in printed
    assert "audit trail:" not in printed  # a dry run changes nothing, the trail included
    assert len(await remaining_events(rights)) == 4
    assert await asyncio.to_thread(cli, ["retention", "run"]) == 0
    printed = capsys.readouterr().out
    assert "3 item(s) past their period, 3 changed" in printed
    assert "audit trail: 0 raw-value record(s) erased, 0 event body(ies) purged" in printed
    assert len(await remaining_events(rights)) == 2


async def test_an_unknown_adapter_is_a_clear_error(
    rights: Any, operator_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await asyncio.to_thread(cli, ["retention", "run", "--adapter", "no.such.module:factory"])
    assert code != 0
    assert "cannot load the shop adapter" in capsys.readouterr().err
