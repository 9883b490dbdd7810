import datetime as dt
import http.cookiejar
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette

from privacy_middleware.api.consent import consent_routes, gpc_routes
from privacy_middleware.consent import ConsentService, verify_receipt
from privacy_middleware.context import SCOPE_KEY, Principal, RequestContext
from privacy_middleware.store import Database
from privacy_middleware.types import ASGIApp, Receive, Scope, Send

pytestmark = pytest.mark.anyio
WRITE = {"x-privacy-consent": "1"}


class WithContext:
    """Stands in for the middleware: puts a RequestContext in the scope. The test picks the subject
    with the `x-test-subject` header (the real middleware takes it from a verified JWT)."""

    def __init__(self, app: ASGIApp, with_context: bool = True) -> None:
        self.app = app
        self.with_context = with_context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.with_context:
            headers = dict(scope["headers"])
            subject = headers.get(b"x-test-subject")
            principal = (
                Principal(id=subject.decode(), subject=subject.decode(), recipient="customer", purpose=None)
                if subject
                else None
            )
            scope[SCOPE_KEY] = RequestContext(
                method=scope["method"], path=scope["path"], client_ip="198.51.100.23", principal=principal
            )
        await self.app(scope, receive, send)


def build_app(service: ConsentService, with_context: bool = True) -> ASGIApp:
    routes = consent_routes(service, allowed_origins=["https://shop.example"], cookie_domains=[".shop.example"])
    routes += gpc_routes(dt.date(2026, 3, 1))
    return WithContext(Starlette(routes=routes), with_context)


@pytest.fixture
async def service(sqlite_url: str, make_service: Callable[..., ConsentService]) -> AsyncIterator[ConsentService]:
    """HTTP behaviour does not depend on the database: SQLite only (the store tests cover both)."""
    database = Database(sqlite_url)
    await database.upgrade()
    try:
        yield make_service(database)
    finally:
        await database.dispose()


@pytest.fixture
async def client(service: ConsentService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(service))
    # A jar that keeps nothing: each test sends exactly the Cookie header it means to.
    jar = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    async with httpx.AsyncClient(transport=transport, base_url="https://api.shop.example", cookies=jar) as c:
        yield c


def consent_cookie(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith("pm_consent="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError("no consent cookie set")


async def test_get_without_anything_shows_defaults_and_consent_mode(client: httpx.AsyncClient) -> None:
    response = await client.get("/consent")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["holder"] is None and body["source"] == "none" and body["policy_version"] == "2026-03"
    assert body["purposes"]["analytics"] == {
        "allowed": False,
        "reason": "default_opt_in",
        "legal_basis": "consent",
        "mechanism": "opt_in",
        "choice": None,
        "reconsent_required": False,
        "cookie_class": "analytics",
        "description": "",
    }
    assert body["purposes"]["order_fulfilment"]["reason"] == "not_consent_based"
    assert body["purposes"]["order_fulfilment"]["mechanism"] == "none"
    assert body["consent_mode"]["analytics_storage"] == "denied"


async def test_visitor_sets_consent_gets_receipt_and_cookie_then_reads_it_back(
    client: httpx.AsyncClient, service: ConsentService
) -> None:
    response = await client.put(
        "/consent",
        json={"purposes": {"analytics": True, "marketing": False}, "method": "banner"},
        headers={**WRITE, "user-agent": "Mozilla/5.0 (X11; rv:128.0) Gecko/20100101 Firefox/128.0"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    claims = verify_receipt(body["receipt"], service.receipts.public_key)
    assert claims["record_id"] == body["record_id"]
    assert claims["consent_event"]["source"] == {
        "ip_prefix": "198.51.100.0/24",
        "user_agent_family": "firefox",
    }
    assert body["purposes"]["analytics"]["reason"] == "explicit_granted"
    assert body["holder"] == "visitor"
    cookie = consent_cookie(response)
    set_cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("pm_consent="))
    assert "HttpOnly" in set_cookie and "Secure" in set_cookie

    again = (await client.get("/consent", headers={"cookie": f"pm_consent={cookie}"})).json()
    assert again["source"] == "cookie"
    assert again["purposes"]["analytics"]["allowed"] is True
    assert again["purposes"]["analytics"]["choice"] is True
    assert again["purposes"]["marketing"]["choice"] is False
    assert again["consent_mode"]["analytics_storage"] == "granted"

    history = (await client.get("/consent/history", headers={"cookie": f"pm_consent={cookie}"})).json()
    assert [r["method"] for r in history["records"]] == ["banner"]
    assert history["records"][0]["ip_prefix"] == "198.51.100.0/24"
    assert "198.51.100.23" not in str(history)
    assert history["receipt_public_key"].startswith("-----BEGIN PUBLIC KEY-----")


async def test_a_second_put_from_the_same_browser_keeps_the_visitor(client: httpx.AsyncClient) -> None:
    first = await client.put("/consent", json={"purposes": {"analytics": True}}, headers=WRITE)
    cookie = consent_cookie(first)
    second = await client.put(
        "/consent",
        json={"purposes": {"marketing": True}},
        headers={**WRITE, "cookie": f"pm_consent={cookie}"},
    )
    history = (await client.get("/consent/history", headers={"cookie": f"pm_consent={consent_cookie(second)}"})).json()
    assert len(history["records"]) == 2


async def test_unknown_purpose_is_a_problem_listing_the_valid_ones(client: httpx.AsyncClient) -> None:
    response = await client.put("/consent", json={"purposes": {"analytics": True, "mind_reading": True}}, headers=WRITE)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "unknown_purpose"
    assert problem["valid_purposes"] == ["analytics", "marketing", "personalisation", "product_updates"]
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, "invalid_body"),
        (b"[]", 422, "invalid_body"),
        (b'{"purposes": []}', 422, "invalid_body"),
        (b'{"purposes": {"analytics": true}, "subject": "someone-else"}', 422, "invalid_body"),
        (b'{"purposes": {"analytics": true}, "method": "gpc"}', 422, "invalid_body"),
        (b'{"purposes": {"analytics": "true"}}', 422, "invalid_choice"),
        (b'{"purposes": {"order_fulfilment": false}}', 422, "purpose_not_consent_based"),
        (b'{"purposes": {"analytics": true, "x": "' + b"a" * 20000 + b'"}}', 413, "body_too_large"),
    ],
)
async def test_bad_bodies_are_refused(client: httpx.AsyncClient, content: bytes, status: int, code: str) -> None:
    response = await client.put("/consent", content=content, headers={**WRITE, "content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["code"] == code


async def test_writes_need_the_csrf_header_and_a_trusted_origin(client: httpx.AsyncClient) -> None:
    body = {"purposes": {"analytics": True}}
    no_header = await client.put("/consent", json=body)
    assert no_header.status_code == 403 and no_header.json()["code"] == "csrf_rejected"
    assert (await client.delete("/consent")).status_code == 403
    evil = await client.put("/consent", json=body, headers={**WRITE, "origin": "https://evil.example"})
    assert evil.status_code == 403
    null_origin = await client.put("/consent", json=body, headers={**WRITE, "origin": "null"})
    assert null_origin.status_code == 403
    storefront = await client.put("/consent", json=body, headers={**WRITE, "origin": "https://shop.example"})
    assert storefront.status_code == 200
    own = await client.put("/consent", json=body, headers={**WRITE, "origin": "https://api.shop.example"})
    assert own.status_code == 200


async def test_subject_withdrawal_expires_tracking_cookies_and_applies_everywhere(
    client: httpx.AsyncClient, service: ConsentService
) -> None:
    me = {"x-test-subject": "cust_7"}
    await client.put("/consent", json={"purposes": {"analytics": True, "marketing": True}}, headers={**WRITE, **me})
    granted = (await client.get("/consent", headers=me)).json()
    assert granted["source"] == "store" and granted["holder"] == "subject"
    assert granted["purposes"]["marketing"]["allowed"] is True

    response = await client.request(
        "DELETE",
        "/consent",
        headers={**WRITE, **me, "cookie": "session=s1; _ga=GA1.1; _fbp=fb.1; cart=3"},
    )
    assert response.status_code == 200
    body = response.json()
    assert {n for n, p in body["purposes"].items() if p["allowed"]} == {"order_fulfilment", "security"}
    set_cookies = response.headers.get_list("set-cookie")
    expired = sorted({h.split("=", 1)[0] for h in set_cookies if "Max-Age=0" in h})
    assert expired == ["_fbp", "_ga"]
    assert any("Domain=.shop.example" in h for h in set_cookies)
    assert not any(h.startswith(("session=", "cart=")) for h in set_cookies)
    claims = verify_receipt(body["receipt"], service.receipts.public_key)
    assert claims["consent_event"]["expression_method"] == "withdrawal"

    # Another device of the same subject, with an old cookie that still says "granted":
    other_device = (await client.get("/consent", headers=me)).json()
    assert other_device["purposes"]["marketing"]["allowed"] is False
    history = (await client.get("/consent/history", headers=me)).json()
    assert [r["method"] for r in history["records"]] == ["api", "withdrawal"]


async def test_anonymous_write_with_an_account_cookie_does_not_touch_the_account(
    client: httpx.AsyncClient, service: ConsentService
) -> None:
    me = {"x-test-subject": "cust_8"}
    response = await client.put("/consent", json={"purposes": {"analytics": True}}, headers={**WRITE, **me})
    account_cookie = consent_cookie(response)
    anonymous = await client.put(
        "/consent",
        json={"purposes": {"analytics": False}},
        headers={**WRITE, "cookie": f"pm_consent={account_cookie}"},
    )
    assert anonymous.status_code == 200 and anonymous.json()["holder"] == "visitor"
    assert (await service.decide(subject="cust_8")).allowed("analytics")


async def test_gpc_header_is_reflected_in_get(client: httpx.AsyncClient) -> None:
    me = {"x-test-subject": "cust_9"}
    await client.put("/consent", json={"purposes": {"marketing": True}}, headers={**WRITE, **me})
    body = (await client.get("/consent", headers={**me, "sec-gpc": "1"})).json()
    assert body["gpc"] is True
    assert body["purposes"]["marketing"] | {"allowed": False, "reason": "gpc"} == body["purposes"]["marketing"]
    assert body["consent_mode"]["ad_storage"] == "denied"


async def test_forged_cookie_reads_as_no_consent(client: httpx.AsyncClient) -> None:
    response = await client.put("/consent", json={"purposes": {"analytics": True}}, headers=WRITE)
    cookie = consent_cookie(response)
    forged = cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")
    body = (await client.get("/consent", headers={"cookie": f"pm_consent={forged}"})).json()
    assert body["source"] == "none" and body["purposes"]["analytics"]["allowed"] is False
    history = (await client.get("/consent/history", headers={"cookie": f"pm_consent={forged}"})).json()
    assert history["records"] == []


async def test_gpc_support_resource(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/gpc.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"gpc": True, "lastUpdate": "2026-03-01"}


async def test_without_the_middleware_context_the_api_refuses(service: ConsentService) -> None:
    transport = httpx.ASGITransport(app=build_app(service, with_context=False))
    async with httpx.AsyncClient(transport=transport, base_url="https://api.shop.example") as c:
        response = await c.get("/consent")
    assert response.status_code == 500
    assert response.json()["code"] == "context_missing"


async def test_gpc_seen_once_keeps_gpc_purposes_denied_after_it_disappears(client: httpx.AsyncClient) -> None:
    first = await client.put("/consent", json={"purposes": {"marketing": True, "analytics": True}}, headers=WRITE)
    cookie = consent_cookie(first)
    with_gpc = await client.get("/consent", headers={"cookie": f"pm_consent={cookie}", "sec-gpc": "1"})
    renewed = consent_cookie(with_gpc)
    later = (await client.get("/consent", headers={"cookie": f"pm_consent={renewed}"})).json()
    assert later["gpc"] is False
    assert later["purposes"]["marketing"]["allowed"] is False
    assert later["purposes"]["marketing"]["reason"] == "explicit_denied"
    assert later["purposes"]["personalisation"]["allowed"] is False
    assert later["purposes"]["analytics"]["allowed"] is True
    history = (await client.get("/consent/history", headers={"cookie": f"pm_consent={renewed}"})).json()
    assert [r["method"] for r in history["records"]] == ["api", "gpc"]
    # Seen again: nothing more to record.
    again = await client.get("/consent", headers={"cookie": f"pm_consent={renewed}", "sec-gpc": "1"})
    assert "set-cookie" not in again.headers


async def test_store_outage_is_a_503_problem_for_history_but_get_still_decides(
    make_service: Callable[..., ConsentService],
) -> None:
    database = Database("postgresql://nobody@127.0.0.1:1/none")
    service = make_service(database)
    transport = httpx.ASGITransport(app=build_app(service))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://api.shop.example") as c:
            me = {"x-test-subject": "cust_down"}
            history = await c.get("/consent/history", headers=me)
            assert history.status_code == 503
            assert history.json()["code"] == "store_unavailable"
            assert "nobody" not in history.text and "127.0.0.1" not in history.text
            body = (await c.get("/consent", headers=me)).json()
            assert body["source"] == "store_unavailable"
            assert body["purposes"]["analytics"]["reason"] == "store_unavailable"
            assert body["purposes"]["order_fulfilment"]["allowed"] is True
            write = await c.put("/consent", json={"purposes": {"analytics": True}}, headers={**WRITE, **me})
            assert write.status_code == 503 and "set-cookie" not in write.headers
    finally:
        await database.dispose()
