"""Operator gauges on /metrics, read from the real store and key provider; the dashboard uses only real series."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from privacy_middleware.store.rights import RightsRepository
from support.demo import Demo

pytestmark = pytest.mark.anyio

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


async def scrape(demo: Demo) -> dict[str, float]:
    response = await demo.client.get("/metrics")
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if not sample.labels
    }


async def test_gauges_report_requests_keys_and_the_audit_writer(demo: Demo) -> None:
    await demo.client.get("/privacy/health")  # starts the runtime
    repo = RightsRepository(demo.app.runtime.database)
    now = dt.datetime.now(dt.UTC)
    await repo.submit(kind="access", subject="c-1", principal="c-1", due_at=now - dt.timedelta(days=1))
    await repo.submit(kind="erasure", subject="c-2", principal="c-2", due_at=now + dt.timedelta(days=29))
    values = await scrape(demo)
    assert values["privacy_subject_requests_open"] == 2
    assert values["privacy_subject_requests_overdue"] == 1
    assert values["privacy_key_provider_up"] == 1
    assert values["privacy_audit_queue_depth"] >= 0
    assert values["privacy_audit_spool_bytes"] == 0
    assert "privacy_audit_checkpoint_age_seconds" in values
    assert "privacy_audit_events_dropped_total" in values


async def test_the_dashboard_only_uses_series_the_middleware_exports(demo: Demo) -> None:
    await demo.client.get("/privacy/health")
    # a planned request refused, so the labelled series exist too
    await demo.client.get("/orders", headers={"authorization": "Bearer not-a-token"})
    response = await demo.client.get("/metrics")
    exported = {
        sample.name for family in text_string_to_metric_families(response.text) for sample in family.samples
    } | {family.name for family in text_string_to_metric_families(response.text)}
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = {name for expr in expressions for name in re.findall(r"\b(privacy_[a-z_]+)", expr)}
    assert used and used <= exported, used - exported
    for wanted in ("privacy_audit_queue_depth", "privacy_subject_requests_overdue", "privacy_key_provider_up"):
        assert wanted in used


async def test_plan_seconds_time_a_filtered_response_from_the_plan_start(demo: Demo) -> None:
    """The histogram's observation is the plan's own time, not the monotonic clock's reading."""
    token = await demo.partner("logistics-co")
    histogram = demo.app.runtime.metrics.plan_seconds
    before = histogram.collect()[0]
    count_before = next(s.value for s in before.samples if s.name.endswith("_count"))
    sum_before = next(s.value for s in before.samples if s.name.endswith("_sum"))
    response = await demo.client.get("/orders", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    after = histogram.collect()[0]
    count = next(s.value for s in after.samples if s.name.endswith("_count")) - count_before
    took = next(s.value for s in after.samples if s.name.endswith("_sum")) - sum_before
    assert count == 1
    assert 0 < took < 5  # seconds: one filtered list, not the time since the clock's epoch
