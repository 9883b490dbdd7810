"""The rights API through the demo shop behind the middleware: real JWTs, real SQLite, real keys."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from pytest_httpx import HTTPXMock

from privacy_middleware.audit import data_access, login_attempt
from privacy_middleware.rights.adapter import ShopAdapterError
from privacy_middleware.rights.receipts import verify_erasure_receipt
from privacy_middleware.store.rights import rights_requests
from support.dns import FakeDNS

pytestmark = pytest.mark.anyio

PERSONAL = (
    "ada@example.com",
    "Ada Lovelace",
    "12 Marylebone Road",
    "+44 20 7946 0018",
    "4242424242424242",
    "NW1 5LR",
    "Please ring twice.",
    "1990-04-01",
)


async def test_export_returns_every_piece_of_data_in_clear_and_who_received_what(rights: Any) -> None:
    subject, token, order = await rights.customer_with_order()
    await rights.consent(subject)
    rights.audit.emit(
        data_access(
            principal="logistics-co",
            subject=subject,
            recipient="logistics",
            purpose="delivery",
            route="GET /orders",
            categories=["user.contact.address.delivery.street", "user.contact.phone"],
        )
    )
    rights.audit.emit(
        data_access(
            principal="stats-co",
            subject=subject,
            recipient="analytics",
            purpose="analytics",
            categories=["user.id"],
        )
    )
    rights.audit.emit(
        login_attempt(
            success=True,
            subject=subject,
            username="ada@example.com",
            ip="198.51.100.20",
            route="POST /auth/login",
        )
    )
    await rights.audit.flush()

    response = await rights.client.get("/privacy/me/export", headers=rights.auth(token))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    document = response.json()
    assert document["schema"] == "privacy-middleware/export/v1"
    assert document["subject"] == subject
    records = {r["kind"]: r for r in document["shop"]["records"]}
    assert records["customer"]["data"]["email"] == "ada@example.com"
    assert records["customer"]["data"]["birth_date"] == "1990-04-01"
    exported = records["order"]["data"]
    assert exported["id"] == order["id"]
    assert exported["payment"]["card"]["number"] == "\u2022" * 12 + "4242"  # the owner's view of a card: last four
    assert exported["payment"]["card"]["holder"] == "Ada Lovelace"
    assert exported["shipping_address"]["street"] == "12 Marylebone Road"
    assert exported["shipping_address"]["phone"] == "+44 20 7946 0018"
    assert exported["billing_address"]["name"] == "Ada Lovelace"
    assert "unreadable_fields" not in records["order"]
    assert "user.financial.card.number" in records["order"]["categories"]
    # Nothing protected is left in the export: every envelope was opened.
    assert "pe1." not in response.text and "tok_" not in response.text
    history = document["consent"]["history"]
    assert [h["purposes"] for h in history] == [{"analytics": True, "marketing": False}]
    assert history[0]["receipt"] == "receipt-jws"
    assert document["consent"]["current"]["analytics"]["granted"] is True
    recipients = {(r["recipient"], r["purpose"]): r for r in document["recipients"]}
    assert recipients[("logistics", "delivery")]["categories"] == [
        "user.contact.address.delivery.street",
        "user.contact.phone",
    ]
    assert recipients[("logistics", "delivery")]["description"] == "Parcel carrier"
    assert recipients[("analytics", "analytics")]["categories"] == ["user.id"]
    assert document["requests"][0]["type"] == "access"
    assert document["access"]["logins"][0]["outcome"] == "success"
    assert document["access"]["logins"][0]["network"] == "198.51.100.0/24"
    # The export itself is recorded as a completed access request.
    mine = (await rights.client.get("/privacy/me/requests", headers=rights.auth(token))).json()
    assert mine["requests"][0]["id"] == response.headers["x-privacy-request-id"]
    assert mine["requests"][0]["status"] == "completed"


async def test_asking_for_someone_elses_data_is_forbidden_and_audited(rights: Any) -> None:
    victim, _, _ = await rights.customer_with_order()
    _, attacker = await rights.demo.register(email="mallory@example.com")
    for method, path, kwargs in [
        ("GET", "/privacy/me/export", {"params": {"subject": victim}}),
        ("POST", "/privacy/me/erasure", {"json": {"subject": victim, "reason": "x"}}),
        ("GET", "/privacy/me/requests", {"params": {"subject": victim}}),
        ("POST", "/privacy/me/restriction", {"json": {"subject": victim}}),
    ]:
        response = await rights.client.request(method, path, headers=rights.auth(attacker), **kwargs)
        assert response.status_code == 403, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert victim not in response.text
    await rights.audit.flush()
    denied = [e for e in await rights.stored_events(victim) if e["detail"].get("state") == "denied"]
    assert {e["kind"] for e in denied} == {
        "api_activity.subject_request_access",
        "api_activity.subject_request_erasure",
        "api_activity.subject_request_listing",
        "api_activity.subject_request_restriction",
    }
    assert all(e["principal"] != victim for e in denied)
    # The victim's data is untouched.
    assert len(await rights.adapter.records(victim)) == 2
    unauthenticated = await rights.client.get("/privacy/me/export")
    assert unauthenticated.status_code == 401


async def test_an_admin_acts_for_a_subject_only_with_a_reason(rights: Any) -> None:
    subject, _, _ = await rights.customer_with_order()
    admin = rights.auth(rights.admin_token())
    missing = await rights.client.get("/privacy/me/export", params={"subject": subject}, headers=admin)
    assert missing.status_code == 422 and missing.json()["code"] == "reason_required"
    response = await rights.client.get(
        "/privacy/me/export", params={"subject": subject, "reason": "ticket 42"}, headers=admin
    )
    assert response.status_code == 200
    assert response.json()["shop"]["records"][1]["data"]["payment"]["card"]["number"] == "\u2022" * 12 + "4242"
    listing = (await rights.client.get("/privacy/admin/requests", headers=admin)).json()["requests"]
    assert listing[0]["acting_principal"] == "dpo-1" and listing[0]["reason"] == "ticket 42"
    # A customer token cannot read the admin list.
    _, token = await rights.demo.register(email="eve@example.com")
    assert (await rights.client.get("/privacy/admin/requests", headers=rights.auth(token))).status_code == 403


async def test_erasure_leaves_nothing_readable_keeps_totals_and_is_idempotent(rights: Any) -> None:
    subject, token, order = await rights.customer_with_order()
    await rights.consent(subject)
    await rights.service.repository.keep_export("dsr_x", subject, "pe1.sealed")
    await rights.service.flags.set(subject, restricted=True)
    rights.audit.emit(
        login_attempt(
            success=True,
            subject=subject,
            username="ada@example.com",
            ip="198.51.100.20",
            route="POST /auth/login",
        )
    )
    await rights.audit.flush()

    response = await rights.client.post("/privacy/me/erasure", headers=rights.auth(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert [s["name"] for s in body["steps"] if s["outcome"] == "done"] == [
        "received",
        "shop",
        "keys",
        "consent",
        "middleware_store",
        "receipt",
    ]
    claims = verify_erasure_receipt(body["receipt"], rights.signing_key.public_key())
    assert claims["sub"] == subject and claims["jti"] == body["id"]
    assert f"customer:{subject}" in claims["shop"]["deleted"]
    assert claims["shop"]["anonymised"] == [f"order:{order['id']}"]
    assert claims["shop"]["kept"] == [
        {"item": f"order:{order['id']}", "reason": "Invoices are kept 10 years for tax law"}
    ]
    assert claims["crypto_shredding"]["keys_destroyed"] == 1
    assert claims["consent"] == {"records": 1, "links": 0}
    # Side records of the registration (account creation) and of the sign-in are both erased.
    assert claims["middleware_store"] == {
        "exports": 1,
        "flags": 1,
        "audit_side_records": 2,
        "guest_capabilities": 0,
        "record_owners": 0,
    }
    assert claims["iss"] == "Demo Tea Shop Ltd" and claims["type"] == "erasure_receipt"

    shop_dump = rights.dump(rights.demo.data_dir / "shop.db")
    privacy_dump = rights.dump(rights.demo.data_dir / "privacy.db")
    for value in PERSONAL:
        assert value not in shop_dump, value
        assert value not in privacy_dump, value
    assert "pe1." not in shop_dump  # no ciphertext left either: nothing to restore a key for
    async with rights.demo.shop.engine.connect() as conn:
        kept = (await conn.execute(sa.text("SELECT customer_id, document FROM orders"))).one()
    document = orjson.loads(kept.document)
    assert kept.customer_id == "anonymised"
    assert document["total"] == order["total"] == 17.0 and document["currency"] == "EUR"
    assert document["items"] == order["items"]
    assert document["payment"]["card"] == {"number_last4": "4242"}  # on legal hold, and not identifying
    assert document["shipping_address"] == {} and document["customer"] == {}

    # A later export finds nothing about the person.
    admin = rights.auth(rights.admin_token())
    later = (
        await rights.client.get("/privacy/me/export", params={"subject": subject, "reason": "check"}, headers=admin)
    ).json()
    assert later["shop"]["records"] == [] and later["consent"]["history"] == []
    assert later["restrictions"]["restricted"] is False
    # Erasing again answers with the same request and the same receipt.
    again = await rights.client.post("/privacy/me/erasure", headers=rights.auth(token))
    assert again.status_code == 200
    assert again.json()["id"] == body["id"] and again.json()["receipt"] == body["receipt"]


class FlakyShop:
    """The demo adapter whose erasure fails until told otherwise (the shop is down)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.failing = True
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> Any:
        self.calls += 1
        if self.failing:
            raise ShopAdapterError("the shop API timed out during erasure", retryable=True)
        return await self.inner.erase(subject, keep_for_legal_hold=keep_for_legal_hold)


async def test_a_failing_shop_leaves_the_erasure_open_and_the_key_alive_until_retried(rights: Any) -> None:
    subject, token, order = await rights.customer_with_order()
    flaky = FlakyShop(rights.adapter)
    rights.service.adapter = flaky
    response = await rights.client.post("/privacy/me/erasure", headers=rights.auth(token))
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "in_progress" and body["failed_step"] == "shop"
    assert body["error"] == "the shop API timed out during erasure" and body["attempts"] == 1
    assert flaky.calls == 2  # one quick retry inside the request
    # The key still exists: the customer's encrypted order is still readable through the API.
    own = await rights.client.get(f"/orders/{order['id']}", headers=rights.auth(token))
    assert own.json()["shipping_address"]["street"] == "12 Marylebone Road"
    # A repeat while open joins the same request instead of starting another.
    repeat = await rights.client.post("/privacy/me/erasure", headers=rights.auth(token))
    assert repeat.json()["id"] == body["id"] and repeat.json()["attempts"] == 2

    flaky.failing = False
    [retried] = await rights.service.retry_open()
    assert retried.id == body["id"] and retried.status == "completed"
    assert retried.failed_step is None
    names = [(s.name, s.outcome) for s in retried.steps]
    assert names.index(("shop", "done")) < names.index(("keys", "done"))
    assert ("shop", "failed") in names
    assert verify_erasure_receipt(retried.result["receipt"], rights.signing_key.public_key())["sub"] == subject
    assert await rights.adapter.records(subject) == []


async def test_transfer_posts_the_export_to_the_receiving_provider(rights: Any, httpx_mock: HTTPXMock) -> None:
    subject, token, _ = await rights.customer_with_order()
    httpx_mock.add_response(method="POST", url="https://import.other-shop.example/v1/portability", status_code=202)
    response = await rights.client.post(
        "/privacy/me/export/transfer",
        headers={**rights.auth(token), "idempotency-key": "transfer-1"},
        json={"url": "https://import.other-shop.example/v1/portability"},
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "completed" and done["result"]["target_host"] == "import.other-shop.example"
    [sent] = httpx_mock.get_requests()
    assert sent.method == "POST" and str(sent.url) == "https://import.other-shop.example/v1/portability"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-privacy-request-id"] == done["id"]
    assert "authorization" not in sent.headers  # the customer's token never leaves
    payload = orjson.loads(sent.content)
    assert payload["subject"] == subject and payload["schema"] == "privacy-middleware/export/v1"
    assert payload["shop"]["records"][1]["data"]["payment"]["card"]["number"] == "\u2022" * 12 + "4242"
    # The same Idempotency-Key does not send twice.
    repeat = await rights.client.post(
        "/privacy/me/export/transfer",
        headers={**rights.auth(token), "idempotency-key": "transfer-1"},
        json={"url": "https://import.other-shop.example/v1/portability"},
    )
    assert repeat.json()["id"] == done["id"]
    assert len(httpx_mock.get_requests()) == 1


async def test_unreachable_transfer_target_fails_the_request_and_keeps_the_export(
    rights: Any, httpx_mock: HTTPXMock
) -> None:
    subject, token, _ = await rights.customer_with_order()
    httpx_mock.add_exception(
        httpx.ConnectError("connection refused"), url="https://import.other-shop.example/v1/portability"
    )
    response = await rights.client.post(
        "/privacy/me/export/transfer",
        headers=rights.auth(token),
        json={"url": "https://import.other-shop.example/v1/portability"},
    )
    assert response.status_code == 502
    problem = response.json()
    assert problem["code"] == "transfer_failed"
    failed = problem["request"]
    assert failed["status"] == "failed" and failed["failed_step"] == "send"
    assert failed["error"] == "transfer target unreachable (ConnectError)"
    assert problem["export"] == f"/privacy/me/requests/{failed['id']}/export"
    kept = await rights.client.get(f"/privacy/me/requests/{failed['id']}/export", headers=rights.auth(token))
    assert kept.status_code == 200
    assert kept.json()["subject"] == subject
    assert kept.json()["shop"]["records"][1]["data"]["shipping_address"]["street"] == "12 Marylebone Road"
    # Kept sealed for the subject: the privacy store holds no clear copy.
    assert "12 Marylebone Road" not in rights.dump(rights.demo.data_dir / "privacy.db")
    # Another customer cannot fetch it.
    _, other = await rights.demo.register(email="eve@example.com")
    assert (
        await rights.client.get(f"/privacy/me/requests/{failed['id']}/export", headers=rights.auth(other))
    ).status_code == 404
    denied = [e for e in await rights.stored_events(subject) if e["detail"].get("state") == "denied"]
    assert [e["kind"] for e in denied] == ["api_activity.subject_request_transfer"]


@pytest.mark.parametrize(
    "url",
    [
        "http://import.example/",
        "https://user:pw@import.example/",
        "ftp://import.example/",
        "https://0177.0.0.1/x",  # the URL parser refuses what looks dotted-decimal but is not
        42,
        None,
        "https://" + "a" * 2100,
    ],
)
async def test_transfer_refuses_urls_that_are_not_https_without_credentials(rights: Any, url: Any) -> None:
    _, token = await rights.demo.register()
    response = await rights.client.post("/privacy/me/export/transfer", headers=rights.auth(token), json={"url": url})
    assert response.status_code == 422 and response.json()["code"] == "invalid_transfer_target"
    assert response.json()["field"] == "url"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x",
        "https://127.1/x",
        "https://2130706433/x",
        "https://0x7f000001/x",
        "https://0x7f.1/x",
        "https://127.0.0.1./x",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[64:ff9b::a00:1]/x",
        "https://10.0.0.8/x",
        "https://100.64.0.1/x",
        "https://169.254.169.254/latest",
        "https://198.18.0.1/x",
        "https://[fd00::1]/x",
        "https://localhost/x",
        "https://db.internal/",
        "https://private-name.test/x",
        "https://mixed-name.test/x",
    ],
)
async def test_transfer_refuses_targets_that_resolve_to_non_public_addresses(
    rights: Any, url: str, httpx_mock: HTTPXMock, fake_dns: FakeDNS, caplog: pytest.LogCaptureFixture
) -> None:
    fake_dns.answer("private-name.test", ["192.168.10.4"])
    fake_dns.answer("mixed-name.test", ["93.184.215.14", "10.9.8.7"])
    subject, token = await rights.demo.register()
    caplog.set_level(logging.DEBUG)
    response = await rights.client.post("/privacy/me/export/transfer", headers=rights.auth(token), json={"url": url})
    problem = response.json()
    assert response.status_code == 422 and problem["code"] == "outbound_target_not_allowed", response.text
    assert problem["field"] == "url"
    host = httpx.URL(url).host
    assert host not in response.text and host not in caplog.text  # field path, never the value
    assert httpx_mock.get_requests() == []  # nothing was sent anywhere
    assert await rights.service.repository.for_subject(subject) == []  # refused before anything was recorded
    [finding] = [e for e in await rights.stored_events(subject) if e["kind"].endswith("outbound_target_refused")]
    assert finding["detail"]["related"]["field"] == "url" and host not in orjson.dumps(finding).decode()


async def test_transfer_sends_to_the_address_it_checked(rights: Any, httpx_mock: HTTPXMock, fake_dns: FakeDNS) -> None:
    """A name that answers a public address to the check and a private one afterwards (DNS
    rebinding) is looked up once: the send uses the checked answer."""
    fake_dns.answer("rebind.example", ["93.184.215.14"], ["127.0.0.1"])
    _, token, _ = await rights.customer_with_order()
    httpx_mock.add_response(method="POST", url="https://rebind.example/import", status_code=202)
    response = await rights.client.post(
        "/privacy/me/export/transfer", headers=rights.auth(token), json={"url": "https://rebind.example/import"}
    )
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text
    assert fake_dns.lookups.count("rebind.example") == 1


async def test_transfer_does_not_follow_a_redirect_to_a_private_address(rights: Any, httpx_mock: HTTPXMock) -> None:
    _, token, _ = await rights.customer_with_order()
    httpx_mock.add_response(
        method="POST", url="https://import.example/v1", status_code=307, headers={"location": "https://10.0.0.5/steal"}
    )
    response = await rights.client.post(
        "/privacy/me/export/transfer", headers=rights.auth(token), json={"url": "https://import.example/v1"}
    )
    assert response.status_code == 502 and response.json()["code"] == "transfer_failed"
    assert response.json()["request"]["error"] == "transfer target answered HTTP 307"
    assert [str(r.url) for r in httpx_mock.get_requests()] == ["https://import.example/v1"]


async def test_restriction_and_objection_set_flags_at_once(rights: Any) -> None:
    subject, token, _ = await rights.customer_with_order()
    other_instance = rights.service.flags.__class__(rights.service.database)
    assert (await other_instance.get(subject)).restricted is False  # cached on "another instance"
    rights.service.flags.bus.subscribe("subject-flags", other_instance._on_changed)

    restricted = await rights.client.post("/privacy/me/restriction", headers=rights.auth(token))
    assert restricted.status_code == 200 and restricted.json()["flags"]["restricted"] is True
    assert (await other_instance.get(subject)).restricted is True  # dropped through the bus
    objected = await rights.client.post(
        "/privacy/me/objection", headers=rights.auth(token), json={"purposes": ["analytics", "security"]}
    )
    assert objected.json()["flags"] == {
        **objected.json()["flags"],
        "restricted": True,
        "objections": ["analytics", "security"],
    }
    contract = await rights.client.post(
        "/privacy/me/objection", headers=rights.auth(token), json={"purposes": ["order_fulfilment"]}
    )
    assert contract.status_code == 422 and contract.json()["code"] == "objection_not_applicable"
    unknown = await rights.client.post(
        "/privacy/me/objection", headers=rights.auth(token), json={"purposes": ["<script>"]}
    )
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_purpose"
    withdrawn = await rights.client.request(
        "DELETE", "/privacy/me/objection", headers=rights.auth(token), json={"purposes": ["security"]}
    )
    assert withdrawn.json()["flags"]["objections"] == ["analytics"]
    lifted = await rights.client.delete("/privacy/me/restriction", headers=rights.auth(token))
    assert lifted.json()["flags"]["restricted"] is False
    flags = await other_instance.get(subject)
    assert flags.restricted is False and flags.objects_to("analytics")
    kinds = [
        r["type"]
        for r in (await rights.client.get("/privacy/me/requests", headers=rights.auth(token))).json()["requests"]
    ]
    assert kinds.count("restriction") == 2 and kinds.count("objection") == 2


async def test_rectification_corrects_the_profile_and_refuses_other_fields(rights: Any) -> None:
    subject, token, _ = await rights.customer_with_order()
    response = await rights.client.post(
        "/privacy/me/rectification",
        headers=rights.auth(token),
        json={"changes": {"name": "Augusta Ada King", "phone": "+44 20 7946 0999"}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"changed": ["name", "phone"]}
    me = (await rights.client.get("/me", headers=rights.auth(token))).json()
    assert me["name"] == "Augusta Ada King" and me["phone"] == "+44 20 7946 0999"
    refused = await rights.client.post(
        "/privacy/me/rectification", headers=rights.auth(token), json={"changes": {"password_hash": "x"}}
    )
    assert refused.status_code == 422 and refused.json()["code"] == "rectification_rejected"
    _, other_token = await rights.demo.register(email="grace@example.com")
    taken = await rights.client.post(
        "/privacy/me/rectification",
        headers=rights.auth(other_token),
        json={"changes": {"email": "ada@example.com"}},
    )
    assert taken.status_code == 422 and "ada@example.com" not in taken.text
    empty = await rights.client.post("/privacy/me/rectification", headers=rights.auth(token), json={"changes": {}})
    assert empty.status_code == 422
    statuses = [r.status for r in (await rights.service.requests_of(subject)) if r.kind == "rectification"]
    assert sorted(statuses) == ["completed", "rejected"]


async def test_admin_list_puts_overdue_requests_first(rights: Any) -> None:
    first, _, _ = await rights.customer_with_order()
    second, _ = await rights.demo.register(email="grace@example.com")
    late, _ = await rights.service.submit("erasure", first, principal=first)
    recent, _ = await rights.service.submit("erasure", second, principal=second)
    done, _ = await rights.service.export(second, principal=second)
    async with rights.service.database.begin() as conn:
        await conn.execute(
            rights_requests.update()
            .where(rights_requests.c.id == late.id)
            .values(due_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
        )
    listing = (await rights.client.get("/privacy/admin/requests", headers=rights.auth(rights.admin_token()))).json()
    assert listing["requests"][0]["id"] == late.id and listing["requests"][0]["overdue"] is True
    assert listing["overdue"] == 1
    assert {r["id"] for r in listing["requests"][1:]} == {recent.id, done.id}
    open_only = (
        await rights.client.get(
            "/privacy/admin/requests",
            params={"status": "received"},
            headers=rights.auth(rights.admin_token()),
        )
    ).json()
    assert [r["id"] for r in open_only["requests"]] == [late.id, recent.id]
    bad = await rights.client.get(
        "/privacy/admin/requests", params={"status": "x"}, headers=rights.auth(rights.admin_token())
    )
    assert bad.status_code == 422
    # The due date follows the policy: 30 calendar days for the demo shop.
    assert recent.due_at - recent.created_at == dt.timedelta(days=30)


async def test_account_closure_erases_at_once(rights: Any) -> None:
    subject, token, order = await rights.customer_with_order()
    closed = await rights.service.on_account_closed(subject)
    assert closed.status == "completed" and closed.reason == "account_closure"
    assert await rights.adapter.records(subject) == []
    own = await rights.client.get(f"/orders/{order['id']}", headers=rights.auth(token))
    assert own.status_code == 404  # the order now belongs to nobody


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{", 400, "malformed_json"),
        (b"[1, 2]", 422, "invalid_body"),
        (b'{"subject": {"$ne": null}, "reason": "x"}', 422, "invalid_subject"),
        (b'{"subject": "cus_1\\u0000", "reason": "x"}', 422, "invalid_subject"),
        (b'{"subject": "cus_other", "reason": ""}', 422, "invalid_reason"),
    ],
)
async def test_malformed_bodies_are_refused_before_anything_happens(
    rights: Any, content: bytes, status: int, code: str
) -> None:
    response = await rights.client.post(
        "/privacy/me/erasure",
        content=content,
        headers={**rights.auth(rights.admin_token()), "content-type": "application/json"},
    )
    assert response.status_code == status and response.json()["code"] == code
    listing = await rights.client.get("/privacy/admin/requests", headers=rights.auth(rights.admin_token()))
    assert listing.json()["requests"] == []
