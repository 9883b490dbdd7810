"""The shopper privacy centre, driven over HTTP like a browser without JavaScript: forms, cookies,
redirects, through the middleware in front of the demo shop."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from privacy_middleware.demo.run import build_demo, demo_policy_path
from support.demo import Demo
from support.pages import csrf_of, sign_in

pytestmark = pytest.mark.anyio

CENTER = "/privacy/center"


async def test_centre_pages_have_a_strict_csp_and_no_inline_script_or_style(demo: Demo) -> None:
    for path in ["", "/history", "/notice", "/signin"]:
        response = await demo.client.get(CENTER + path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        html = response.text
        assert "<style" not in html and " style=" not in html
        assert re.search(r"<script(?![^>]*\ssrc=)", html) is None
        assert "http://" not in html.replace("http://shop", "") and "https://" not in html


async def test_language_follows_accept_language_and_the_switch(demo: Demo) -> None:
    german = await demo.client.get(CENTER, headers={"accept-language": "fr;q=0.9, de;q=0.8"})
    assert '<html lang="de">' in german.text and "Ihre Auswahl" in german.text
    chinese = await demo.client.get(CENTER + "?lang=zh", headers={"accept-language": "de"})
    assert '<html lang="zh">' in chinese.text and "您的选择" in chinese.text
    # The switch is remembered.
    again = await demo.client.get(CENTER + "/history", headers={"accept-language": "de"})
    assert '<html lang="zh">' in again.text


async def test_a_visitor_gives_consent_in_the_centre_and_tracking_passes(demo: Demo) -> None:
    before = await demo.client.post("/track", json={"event": "view"})
    assert before.status_code == 204  # analytics is opt-in: refused without consent
    page = await demo.client.get(CENTER)
    assert 'name="purpose" value="analytics"' in page.text
    saved = await demo.client.post(
        CENTER + "/consent", data={"csrf": csrf_of(page.text), "purpose": "analytics", "action": "save"}
    )
    assert saved.status_code == 303 and saved.headers["location"].endswith("?done=saved")
    assert (await demo.client.post("/track", json={"event": "view"})).status_code == 202
    consent = (await demo.client.get("/privacy/consent")).json()
    assert consent["purposes"]["analytics"]["choice"] is True
    assert consent["purposes"]["marketing"]["choice"] is False
    history = await demo.client.get(CENTER + "/history")
    assert "privacy centre or app" in history.text and history.text.count("eyJ") >= 1  # the signed receipt
    withdrawn = await demo.client.post(CENTER + "/consent", data={"csrf": csrf_of(page.text), "action": "withdraw"})
    assert withdrawn.status_code == 303
    assert (await demo.client.post("/track", json={"event": "view"})).status_code == 204


async def test_forms_refuse_a_missing_csrf_token_and_a_foreign_origin(demo: Demo) -> None:
    page = await demo.client.get(CENTER)
    missing = await demo.client.post(CENTER + "/consent", data={"purpose": "analytics"})
    assert missing.status_code == 403 and missing.json()["code"] == "csrf_rejected"
    forged = await demo.client.post(CENTER + "/consent", data={"csrf": "x" * 43, "purpose": "analytics"})
    assert forged.status_code == 403
    foreign = await demo.client.post(
        CENTER + "/consent",
        data={"csrf": csrf_of(page.text), "purpose": "analytics"},
        headers={"origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    cross_site = await demo.client.post(
        CENTER + "/signin", data={"token": "x"}, headers={"sec-fetch-site": "cross-site"}
    )
    assert cross_site.status_code == 403


async def test_gpc_is_shown_and_honoured(demo: Demo) -> None:
    gpc = {"sec-gpc": "1"}
    page = await demo.client.get(CENTER, headers=gpc)
    assert 'id="gpc-note"' in page.text
    assert 'name="purpose" value="marketing"' not in page.text  # not choosable while GPC is sent
    await demo.client.post(
        CENTER + "/consent",
        data={"csrf": csrf_of(page.text), "purpose": ["analytics", "marketing"], "action": "save"},
        headers=gpc,
    )
    consent = (await demo.client.get("/privacy/consent")).json()
    assert consent["purposes"]["analytics"]["allowed"] is True
    assert consent["purposes"]["marketing"]["allowed"] is False  # GPC persisted as a refusal


async def test_clear_browsing_data_expires_tracking_cookies_only(demo: Demo) -> None:
    page = await demo.client.get(CENTER)
    demo.client.cookies.set("_ga", "GA1.1.1.1")
    demo.client.cookies.set("session", "keep-me")
    response = await demo.client.post(CENTER + "/clear-browsing", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 303
    expired = [c.split("=")[0] for c in response.headers.get_list("set-cookie") if "Max-Age=0" in c]
    assert "_ga" in expired and "session" not in expired


async def test_signed_in_customer_exports_corrects_restricts_and_deletes(demo: Demo) -> None:
    subject, token = await demo.register()
    assert (await demo.client.get(CENTER + "/data")).headers["location"].startswith(CENTER + "/signin")
    bad = await demo.client.post(CENTER + "/signin", data={"token": token[:-4] + "AAAA"})
    assert bad.headers["location"].endswith("error=token")
    await sign_in(demo, token)
    data = await demo.client.get(CENTER + "/data")
    assert data.status_code == 200 and '<option value="phone">' in data.text
    csrf = csrf_of(data.text)

    export = await demo.client.post(CENTER + "/export", data={"csrf": csrf})
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    assert export.json()["subject"] == subject

    corrected = await demo.client.post(CENTER + "/correct", data={"csrf": csrf, "field": "name", "value": "Ada King"})
    assert corrected.headers["location"].endswith("done=corrected")
    me = await demo.client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert me.json()["name"] == "Ada King"

    restricted = await demo.client.post(CENTER + "/restrict", data={"csrf": csrf, "restricted": "1"})
    assert restricted.status_code == 303
    objected = await demo.client.post(CENTER + "/object", data={"csrf": csrf, "purpose": "analytics"})
    assert objected.status_code == 303
    mine = (await demo.client.get("/privacy/me/requests", headers={"authorization": f"Bearer {token}"})).json()
    assert mine["flags"]["restricted"] is True and mine["flags"]["objections"] == ["analytics"]
    page = await demo.client.get(CENTER + "/data")
    assert "Correction" in page.text and "Restriction" in page.text

    unconfirmed = await demo.client.post(CENTER + "/delete", data={"csrf": csrf})
    assert unconfirmed.headers["location"].endswith("error=confirm")
    deleted = await demo.client.post(CENTER + "/delete", data={"csrf": csrf, "confirm": "yes"})
    assert deleted.status_code == 200
    receipt = re.search(r'id="erasure-receipt">([^<]+)<', deleted.text)
    assert receipt is not None
    key = (await demo.client.get("/privacy/rights/receipt-key")).text
    claims = jwt.decode(receipt.group(1).strip(), key, algorithms=["EdDSA"], options={"verify_aud": False})
    assert claims  # signed by the shop's receipt key
    assert any("pm_session=;" in c for c in deleted.headers.get_list("set-cookie"))
    gone = await demo.client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert gone.status_code == 404


async def test_who_saw_my_data_names_the_recipient_and_purpose(demo: Demo) -> None:
    subject, token = await demo.register()
    assert (await demo.checkout(token)).status_code == 201
    carrier = await demo.partner("logistics-co")
    assert (await demo.client.get("/orders", headers={"authorization": f"Bearer {carrier}"})).status_code == 200
    await demo.app.runtime.audit.flush()
    await sign_in(demo, token)
    page = await demo.client.get(CENTER + "/access")
    assert page.status_code == 200
    assert "Parcel carrier" in page.text and "Hand parcels to the delivery partner" in page.text
    assert subject not in page.text


async def test_the_notice_is_rendered_from_the_policy_with_its_versions(demo: Demo) -> None:
    page = await demo.client.get(CENTER + "/notice")
    assert "Demo Tea Shop" in page.text and "2026.11" in page.text
    assert "Parcel carrier" in page.text


async def test_a_browser_gets_an_html_error_page_and_other_clients_problem_json(demo: Demo) -> None:
    html = await demo.client.post(
        CENTER + "/consent", data={"purpose": "analytics"}, headers={"accept": "text/html,*/*;q=0.8"}
    )
    assert html.status_code == 403 and html.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in html.text and "unsafe-inline" not in html.headers["content-security-policy"]
    problem = await demo.client.post(CENTER + "/consent", data={"purpose": "analytics"})
    assert problem.status_code == 403 and problem.json()["code"] == "csrf_rejected"


async def test_the_shops_own_token_cookie_signs_the_customer_in(tmp_path: Path, asgi_lifespan: Any) -> None:
    app, shop = build_demo(tmp_path, audit={"retention_interval_seconds": 0}, pages={"token_cookie": "shop_jwt"})
    transport = httpx.ASGITransport(app=app, client=("198.51.100.21", 40000))
    async with asgi_lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        demo = Demo(app, shop, client, tmp_path)
        _, token = await demo.register()
        assert (await client.get(CENTER + "/data")).status_code == 303  # no session, no cookie: sign in first
        client.cookies.set("shop_jwt", token)
        page = await client.get(CENTER + "/data")
        assert page.status_code == 200 and "Download my data" in page.text
        client.cookies.set("shop_jwt", token[:-3] + "xyz")
        assert (await client.get(CENTER + "/data")).status_code == 303  # a forged token is no session


async def test_the_notice_lists_the_policys_earlier_versions_with_what_changed(
    tmp_path: Path, asgi_lifespan: Any
) -> None:
    text = demo_policy_path().read_text(encoding="utf-8")
    text = text.replace(
        'contact = "privacy@demo-tea-shop.example"\n',
        'contact = "privacy@demo-tea-shop.example"\n'
        'previous_versions = [{ version = "2026.05", effective_date = 2026-05-01, summary = "Analytics added" }]\n',
        1,
    )
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(text, encoding="utf-8")
    app, _ = build_demo(tmp_path, policy_file=policy_file, audit={"retention_interval_seconds": 0})
    transport = httpx.ASGITransport(app=app)
    async with asgi_lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        page = await client.get(CENTER + "/notice")
    versions = page.text.split("Versions of this notice")[1]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]*)</td></tr>", versions)
    assert rows[0][:2] == ("2026.11", "2026-11-01") and rows[0][2] != "—"  # enforced since this start
    assert rows[1] == ("2026.05", "2026-05-01", "—", "Analytics added")
