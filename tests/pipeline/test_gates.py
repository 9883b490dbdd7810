"""The consent gate on tracking routes, and the login and account steps, each on its own: built from
the services a real runtime holds (SQLite store, real consent service and audit writer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.context import RequestContext
from privacy_middleware.pipeline.account import AccountAudit
from privacy_middleware.pipeline.consent_decision import ConsentResolver
from privacy_middleware.pipeline.login import LoginAudit
from privacy_middleware.pipeline.plan import Exchange, Respond
from privacy_middleware.pipeline.tracking import TrackingGate
from privacy_middleware.policy.compile import RouteSpec
from privacy_middleware.principal import Principal
from privacy_middleware.rights.closure import AccountClosure
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from privacy_middleware.store.consent_records import Holder
from support.unit_policy import route, unit_policy

pytestmark = pytest.mark.anyio

POLICY = unit_policy()
CUSTOMER = Principal(id="cus_1", subject="cus_1", recipient="customer", purpose=None)


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
    headers = [(b"authorization", b"Bearer x"), (b"cookie", b"sid=1"), (b"x-forwarded-for", b"10.0.0.1")]
    return Exchange(scope={"type": "http", "headers": headers, "client": ("203.0.113.9", 5000)}, ctx=ctx, spec=spec)


def tracking_gate(runtime: Runtime, spec: RouteSpec) -> TrackingGate:
    assert spec.tracking is not None
    return TrackingGate(
        spec.tracking,
        policy=runtime.policy,
        consent=ConsentResolver(runtime.consent, runtime.access, runtime.policy),
        pseudonymiser=runtime.fields.pseudonymiser,
        metrics=runtime.metrics,
    )


async def test_tracking_without_consent_is_answered_here(runtime: Runtime) -> None:
    spec = route(POLICY, "POST", "/events")
    ex = exchange(spec, CUSTOMER)
    with pytest.raises(Respond) as answered:
        await tracking_gate(runtime, spec).before(ex)
    assert answered.value.status == 204
    assert ex.ctx.facts.consent is not None and not ex.ctx.facts.consent.decision.allowed("newsletter")


async def test_tracking_with_consent_passes_without_identity(runtime: Runtime) -> None:
    await runtime.consent.set_purposes(Holder.subject("cus_1"), {"newsletter": True})
    spec = route(POLICY, "POST", "/events")
    gate = tracking_gate(runtime, spec)
    ex = exchange(spec, CUSTOMER)
    await gate.before(ex)
    assert dict(ex.scope["headers"]) == {}  # credentials and forwarding hops stripped
    assert ex.scope["client"] == ("203.0.113.0", 5000)
    ex.request_json, ex.request_has_json = {"user_id": "cus_1", "page": "/tea"}, True
    await gate.on_request(ex)
    assert ex.request_json["page"] == "/tea" and ex.request_json["user_id"].startswith("ps_")


async def test_login_outcomes_are_audited(runtime: Runtime) -> None:
    spec = route(POLICY, "POST", "/login")
    assert spec.login is not None
    step = LoginAudit(spec, spec.login, audit=runtime.audit, guard=runtime.login_guard, consent=runtime.consent)
    for status, response in ((401, None), (200, {"id": "cus_1"})):
        ex = exchange(spec)
        ex.request_json, ex.request_has_json = {"email": "ada@example.com", "password": "x"}, True
        await step.on_request(ex)
        assert ex.ctx.facts.login_username == "ada@example.com"
        ex.status = status
        if response is not None:
            ex.response_json, ex.response_has_json = response, True
        await step.after(ex)
    await runtime.audit.flush()
    records = await search(runtime.database, kinds=["authentication.*"])
    assert [r.subject for r in records] == [None, "cus_1"]
    assert "ada@example.com" not in str([r.document for r in records])


async def test_account_closure_is_audited_and_fanned_out(runtime: Runtime) -> None:
    spec = route(POLICY, "DELETE", "/account")
    assert spec.account is not None
    closure = AccountClosure()
    closed: list[str] = []

    async def heard(subject: str) -> None:
        closed.append(subject)

    closure.subscribe(heard)
    ex = exchange(spec, CUSTOMER)
    ex.status = 204
    await AccountAudit(spec, spec.account, audit=runtime.audit, closure=closure).after(ex)
    refused = exchange(spec, CUSTOMER)
    refused.status = 409
    await AccountAudit(spec, spec.account, audit=runtime.audit, closure=closure).after(refused)
    await runtime.audit.flush()
    assert closed == ["cus_1"]
    assert [r.subject for r in await search(runtime.database, kinds=["account_change.*"])] == ["cus_1"]


async def test_one_gate_follows_each_decision_as_consent_changes(runtime: Runtime) -> None:
    """The gate's verdict is kept per decision object: granted, withdrawn and granted again, the same
    gate lets through, answers here, then lets through; every purpose's verdict is what `allows` and
    `headers` answer for that decision."""
    spec = route(POLICY, "POST", "/events")
    gate = tracking_gate(runtime, spec)
    holder = Holder.subject("cus_1")
    for granted in (True, False, True, False):
        await runtime.consent.set_purposes(holder, {"newsletter": granted})
        for _ in range(2):  # the second time from what the resolver kept
            ex = exchange(spec, CUSTOMER)
            if granted:
                await gate.before(ex)
            else:
                with pytest.raises(Respond):
                    await gate.before(ex)
            resolution = ex.ctx.facts.consent
            assert resolution is not None
            for purpose in POLICY.purposes:
                verdict = gate.consent.verdict(resolution, purpose)
                assert verdict == (gate.consent.allows(resolution, purpose), gate.consent.headers(resolution))
            assert gate.consent.verdict(resolution, "newsletter")[0] is granted
