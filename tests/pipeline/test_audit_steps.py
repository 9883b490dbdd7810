"""The audit steps on their own: run on an Exchange with the real audit writer and store (SQLite),
judged by the events they leave in the trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.context import RequestContext
from privacy_middleware.fields.engine import FieldReport, Viewer
from privacy_middleware.pipeline.disclosure_audit import DisclosureAudit
from privacy_middleware.pipeline.facts import Disclosure, Refusal
from privacy_middleware.pipeline.plan import Exchange
from privacy_middleware.pipeline.refusal_audit import RefusalAudit
from privacy_middleware.policy.compile import RouteSpec
from privacy_middleware.principal import Principal
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from support.unit_policy import route, unit_policy

pytestmark = pytest.mark.anyio

POLICY = unit_policy()


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}",
        data_dir=tmp_path,
        jwt={"secret": "t" * 40, "algorithms": ["HS256"]},
    )
    built = Runtime(settings, policy=POLICY)
    await built.ensure_started()
    try:
        yield built
    finally:
        await built.stop()


def exchange(spec: RouteSpec, principal: Principal | None = None) -> Exchange:
    ctx = RequestContext(method=spec.method, path=spec.template, client_ip="203.0.113.9", principal=principal)
    return Exchange(scope={"type": "http", "headers": []}, ctx=ctx, spec=spec)


async def test_refusals_are_recorded_by_field_and_kind(runtime: Runtime) -> None:
    spec = route(POLICY, "POST", "/orders")
    ex = exchange(spec)
    ex.ctx.facts.refusals.append(Refusal("note", ("card_number",), "reject"))
    await RefusalAudit(spec, audit=runtime.audit).after(ex)
    await runtime.audit.flush()
    [record] = await search(runtime.database, kinds=["detection_finding.forbidden_data_submitted"])
    related = str(record.document)
    assert "note" in related and "card_number" in related


async def test_a_disclosure_is_one_data_access_event_listing_its_subjects(runtime: Runtime) -> None:
    spec = route(POLICY, "GET", "/orders/ord_1")
    carrier = Principal(id="carrier-1", subject=None, recipient="logistics", purpose="delivery")
    ex = exchange(spec, carrier)
    report = FieldReport(categories={"user.name", "user.contact.address.delivery"}, subjects={"cus_1", "cus_2"})
    ex.ctx.facts.disclosure = Disclosure(Viewer(carrier, "logistics", {}, "delivery"), report)
    await DisclosureAudit(spec, audit=runtime.audit, strict_categories=()).on_response(ex)
    await runtime.audit.flush()
    [record] = await search(runtime.database, kinds=["api_activity.*"])
    assert (record.subject, record.detail["subjects"], record.detail["record_count"]) == (None, ["cus_1", "cus_2"], 2)
    assert record.principal == "carrier-1"
    for subject in ("cus_1", "cus_2"):
        assert [r.seq for r in await search(runtime.database, subject=subject)] == [record.seq]


async def test_nothing_disclosed_nothing_recorded(runtime: Runtime) -> None:
    spec = route(POLICY, "GET", "/orders/ord_1")
    await DisclosureAudit(spec, audit=runtime.audit, strict_categories=()).on_response(exchange(spec))
    await RefusalAudit(spec, audit=runtime.audit).after(exchange(spec))
    await runtime.audit.flush()
    assert await search(runtime.database, kinds=["api_activity.*", "detection_finding.*"]) == []
