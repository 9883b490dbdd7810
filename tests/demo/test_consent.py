"""Consent-gated tracking through the demo shop: events, cookies, GPC, withdrawal, outbound calls."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from pytest_httpx import HTTPXMock

from privacy_middleware.errors import PrivacyError
from support.demo import Demo

pytestmark = pytest.mark.anyio

CSRF = {"x-privacy-consent": "1"}


def tracked_events(demo: Demo) -> list[str]:
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    try:
        return [row[0] for row in connection.execute("select document from tracking_events")]
    finally:
        connection.close()


def set_cookie_names(response: httpx.Response) -> set[str]:
    return {value.split("=", 1)[0] for value in response.headers.get_list("set-cookie")}


async def test_no_analytics_event_or_tracking_cookie_without_consent(demo: Demo) -> None:
    response = await demo.client.post("/track", json={"event": "page_view", "visitor_id": "v-123"})
    assert response.status_code == 204
    assert tracked_events(demo) == []
    products = await demo.client.get("/products")
    assert products.status_code == 200
    assert set_cookie_names(products) == {"session"}
    metrics = (await demo.client.get("/metrics")).text
    assert 'privacy_tracking_total{outcome="dropped",purpose="analytics"} 1.0' in metrics


async def test_opt_in_lets_events_and_cookies_through_with_identity_stripped(demo: Demo) -> None:
    consent = await demo.client.put(
        "/privacy/consent", json={"purposes": {"analytics": True, "marketing": True}}, headers=CSRF
    )
    assert consent.status_code == 200, consent.text
    assert consent.json()["receipt"]
    products = await demo.client.get("/products")
    assert {"session", "_ga", "_fbp"} <= set_cookie_names(products)
    response = await demo.client.post(
        "/track", json={"event": "page_view", "visitor_id": "v-123", "ip": "198.51.100.77", "page": "/tea"}
    )
    assert response.status_code == 202
    assert "analytics_storage=granted" in response.headers["consent-mode"]
    [stored] = tracked_events(demo)
    assert "v-123" not in stored and "198.51.100.77" not in stored
    assert '"ip":"198.51.100.0"' in stored.replace(" ", "")
    assert '"page":"/tea"' in stored.replace(" ", "")


async def test_gpc_overrides_an_earlier_advertising_opt_in(demo: Demo) -> None:
    await demo.client.put("/privacy/consent", json={"purposes": {"analytics": True, "marketing": True}}, headers=CSRF)
    with_gpc = await demo.client.get("/products", headers={"sec-gpc": "1"})
    names = set_cookie_names(with_gpc)
    assert "_fbp" not in names or any(v.startswith("_fbp=;") for v in with_gpc.headers.get_list("set-cookie"))
    assert "_ga" in names
    state = (await demo.client.get("/privacy/consent", headers={"sec-gpc": "1"})).json()
    assert state["purposes"]["marketing"]["allowed"] is False
    # The opt-out is recorded: the signal's later absence is not an opt-in.
    later = (await demo.client.get("/privacy/consent")).json()
    assert later["purposes"]["marketing"]["allowed"] is False


async def test_withdrawal_expires_cookies_and_stops_events(demo: Demo) -> None:
    await demo.client.put("/privacy/consent", json={"purposes": {"analytics": True}}, headers=CSRF)
    await demo.client.get("/products")
    assert "_ga" in demo.client.cookies
    withdrawn = await demo.client.delete("/privacy/consent", headers=CSRF)
    assert withdrawn.status_code == 200
    assert any(
        (v.startswith("_ga=;") and "Max-Age=0" in v) or "expires=Thu, 01 Jan 1970" in v.lower()
        for v in withdrawn.headers.get_list("set-cookie")
    )
    assert "_ga" not in demo.client.cookies
    response = await demo.client.post("/track", json={"event": "page_view"})
    assert response.status_code == 204
    assert tracked_events(demo) == []


async def test_consent_writes_need_the_csrf_header(demo: Demo) -> None:
    response = await demo.client.put("/privacy/consent", json={"purposes": {"analytics": True}})
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_rejected"


async def test_unknown_purpose_lists_valid_ones(demo: Demo) -> None:
    response = await demo.client.put("/privacy/consent", json={"purposes": {"telepathy": True}}, headers=CSRF)
    assert response.status_code == 422
    assert "analytics" in response.text


async def test_forged_consent_cookie_is_ignored(demo: Demo) -> None:
    demo.client.cookies.set("privacy_consent", "v1.forged.payload.signature")
    response = await demo.client.post("/track", json={"event": "page_view"})
    assert response.status_code == 204


async def test_outbound_analytics_call_needs_the_callers_consent(demo: Demo, httpx_mock: HTTPXMock) -> None:
    """The shop's own server-side analytics call goes through PrivacyTransport while serving a request."""
    httpx_mock.add_response(url="https://collect.analytics.example/e", status_code=200)
    outcomes: list[str] = []

    async def shop_endpoint(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        async with httpx.AsyncClient(transport=demo.app.transport(httpx.AsyncHTTPTransport())) as partner:
            try:
                await partner.post("https://collect.analytics.example/e", json={"event": "purchase"})
                outcomes.append("sent")
            except PrivacyError as error:
                outcomes.append(error.code)
        await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    demo.app.app = shop_endpoint  # the same middleware instance, now in front of this endpoint
    await demo.client.get("/anything")
    await demo.client.put("/privacy/consent", json={"purposes": {"analytics": True}}, headers=CSRF)
    await demo.client.get("/anything")
    assert outcomes == ["consent_required", "sent"]
    assert len(httpx_mock.get_requests()) == 1
