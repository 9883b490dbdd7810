"""The officer console over HTTP: access needs the admin scope; the queue shows overdue requests
first; approve / close / retry act on a request and are audited; a lockout is reset from its finding;
the audit chain is verified on demand."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from privacy_middleware.audit.query import search
from privacy_middleware.store.rights import rights_requests
from support.demo import Demo
from support.pages import csrf_of, sign_in

pytestmark = pytest.mark.anyio

ADMIN = "/privacy/admin"


def officer_token(demo: Demo) -> str:
    return demo.shop.token({"sub": "officer-1", "scope": "privacy:admin"})


async def test_console_needs_the_admin_scope(demo: Demo) -> None:
    anonymous = await demo.client.get(ADMIN)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith(ADMIN + "/signin")
    _, customer = await demo.register()
    refused = await demo.client.post(ADMIN + "/signin", data={"token": customer})
    assert refused.headers["location"].endswith("error=forbidden")
    # A customer's centre session does not open the console either.
    await sign_in(demo, customer)
    assert (await demo.client.get(ADMIN)).status_code == 403
    await sign_in(demo, officer_token(demo), ADMIN + "/signin")
    page = await demo.client.get(ADMIN)
    assert page.status_code == 200 and "Privacy officer console" in page.text
    assert "unsafe-inline" not in page.headers["content-security-policy"]


async def test_queue_shows_the_overdue_request_first_and_actions_are_audited(demo: Demo) -> None:
    rights = demo.app.runtime.rights
    assert rights is not None
    early, _ = await rights.submit("access", "cus_early", principal="platform:test")
    late, _ = await rights.submit("erasure", "cus_late", principal="platform:test")
    async with demo.app.runtime.database.begin() as conn:  # time passes for the second one
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
        await conn.execute(sa.update(rights_requests).where(rights_requests.c.id == late.id).values(due_at=past))
    await sign_in(demo, officer_token(demo), ADMIN + "/signin")
    page = await demo.client.get(ADMIN)
    order = re.findall(r'data-request="([^"]+)"', page.text)
    assert order[:2] == [late.id, early.id]
    assert "overdue" in page.text.split(late.id)[0].rsplit("<tr", 1)[1] + page.text.split(late.id)[1][:400]

    detail = await demo.client.get(f"{ADMIN}/requests/{early.id}")
    assert 'id="action-approve"' in detail.text and 'id="action-close"' in detail.text
    closed = await demo.client.post(
        f"{ADMIN}/requests/{early.id}/close", data={"csrf": csrf_of(detail.text), "reason": "duplicate"}
    )
    assert closed.status_code == 303
    after = await demo.client.get(closed.headers["location"])
    assert "rejected" in after.text and "duplicate" in after.text and "officer-1" in after.text
    again = await demo.client.post(f"{ADMIN}/requests/{early.id}/close", data={"csrf": csrf_of(detail.text)})
    assert again.status_code == 409
    await demo.app.runtime.audit.flush()
    audited = await search(demo.app.runtime.database, kinds=["api_activity.subject_request_access"], limit=50)
    assert any(r.detail.get("state") == "officer_close" and r.principal == "officer-1" for r in audited)


async def test_an_officer_resets_a_lockout(demo: Demo) -> None:
    await demo.register(email="bo@example.com")
    for _ in range(10):
        failed = await demo.client.post("/auth/login", json={"email": "bo@example.com", "password": "wrong password"})
        assert failed.status_code == 401
    good = {"email": "bo@example.com", "password": "correct horse battery"}
    assert (await demo.client.post("/auth/login", json=good)).status_code == 429
    await demo.app.runtime.audit.flush()
    await sign_in(demo, officer_token(demo), ADMIN + "/signin")
    page = await demo.client.get(ADMIN)
    button = re.search(r'name="finding" value="(\d+)"', page.text)
    assert button is not None
    reset = await demo.client.post(ADMIN + "/lockouts/reset", data={"csrf": csrf_of(page.text), "finding": button[1]})
    assert reset.status_code == 303 and reset.headers["location"].endswith("done=reset")
    assert (await demo.client.post("/auth/login", json=good)).status_code == 200
    await demo.app.runtime.audit.flush()
    page = await demo.client.get(ADMIN)
    assert 'name="finding"' not in page.text and "reset" in page.text
    found = await search(demo.app.runtime.database, kinds=["detection_finding.lockout_reset"], limit=10)
    assert found and found[0].detail["related"]["officer"] == "officer-1"


async def test_chain_verifies_on_demand_and_the_page_shows_consent_keys_and_promises(demo: Demo) -> None:
    _, token = await demo.register()
    await demo.checkout(token)  # creates keys
    await demo.client.put(
        "/privacy/consent", json={"purposes": {"analytics": True}}, headers={"x-privacy-consent": "1"}
    )
    await sign_in(demo, officer_token(demo), ADMIN + "/signin")
    page = await demo.client.get(ADMIN)
    assert "<svg" in page.text and "<polyline" in page.text  # the consent chart, drawn on the server
    assert re.search(r"<td>analytics</td><td>1</td><td>1</td><td>100%</td>", page.text)
    assert "Parcel carrier sees only" in page.text and "encrypted before the shop stores it" in page.text
    assert "Generation" in page.text
    verified = await demo.client.post(ADMIN + "/audit/verify", data={"csrf": csrf_of(page.text)})
    assert verified.headers["location"].endswith("verified=ok#chain")


async def test_approving_an_open_erasure_carries_it_out(demo: Demo) -> None:
    subject, _ = await demo.register(email="erase@example.com")
    rights = demo.app.runtime.rights
    assert rights is not None
    request, _ = await rights.submit("erasure", subject, principal="platform:test")
    await sign_in(demo, officer_token(demo), ADMIN + "/signin")
    detail = await demo.client.get(f"{ADMIN}/requests/{request.id}")
    assert 'id="action-retry"' in detail.text
    approved = await demo.client.post(
        f"{ADMIN}/requests/{request.id}/approve", data={"csrf": csrf_of(detail.text), "reason": "identity checked"}
    )
    assert approved.status_code == 303
    done = await rights.get(request.id)
    assert done is not None and done.status == "completed"
    approval = next(s for s in done.steps if s.name == "approved")
    assert approval.detail == {"officer": "officer-1", "reason": "identity checked"}
