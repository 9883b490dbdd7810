"""In a real browser: the banner gates tracking, the centre exports and deletes, the officer resets a
lockout and sees the overdue request first, and no page has a serious accessibility violation."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from privacy_middleware.store.rights import rights_requests
from support.browser import HAVE_BROWSER, LiveDemo, screenshot, serious_violations

pytestmark = pytest.mark.skipif(
    not HAVE_BROWSER, reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"
)

PASSWORD = "correct horse battery"


def wait(driver: webdriver.Chrome, seconds: float = 15) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, seconds)


def click_when_ready(driver: webdriver.Chrome, selector: str) -> None:
    """Click a button of the consent banner once it takes clicks: the banner fades in (and out), and
    a button seen before the animation ends is not yet interactable."""
    wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()


def register(live: LiveDemo, email: str) -> tuple[str, str]:
    response = httpx.post(
        f"{live.base}/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "name": "Ada",
            "phone": "+44 20 7946 0018",
            "birth_date": "1990-04-01",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


def sign_in(driver: webdriver.Chrome, live: LiveDemo, token: str, section: str = "center") -> None:
    driver.get(f"{live.base}/privacy/{section}/signin")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver).until(lambda d: "/signin" not in d.current_url)


def track(driver: webdriver.Chrome) -> str:
    driver.find_element(By.ID, "track").click()
    result = driver.find_element(By.ID, "track-result")
    wait(driver).until(lambda d: result.text != "not sent yet" and result.get_attribute("data-seen") != result.text)
    text = result.text
    driver.execute_script("arguments[0].setAttribute('data-seen', arguments[0].textContent)", result)
    return text


def test_banner_consent_starts_and_stops_tracking(browser: webdriver.Chrome, live_demo: LiveDemo) -> None:
    browser.get(live_demo.base + "/")
    wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#cc-main .cm")))
    screenshot(browser, "storefront-banner")
    assert "dropped (204)" in track(browser)  # no consent yet: the middleware drops the event
    click_when_ready(browser, "#cc-main .cm button[data-role=all]")
    wait(browser).until(lambda d: d.execute_script("return window.PrivacyConsent.allowed('analytics')"))
    assert "accepted (202)" in track(browser)
    layer = browser.execute_script(
        "return window.dataLayer.filter(e => e && e.event === 'privacy_consent_update').map(e => e.privacy_consent)"
    )
    assert layer[-1]["consent_mode"]["analytics_storage"] == "granted" and layer[-1]["purposes"]["analytics"]
    history = browser.execute_async_script(
        "const done = arguments[0]; fetch('/privacy/consent/history').then(r => r.json()).then(done);"
    )
    assert history["records"][-1]["method"] == "banner"

    # Withdraw in the banner's preferences: the next event is dropped again.
    browser.find_element(By.ID, "cookie-settings").click()
    wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#cc-main .pm")))
    screenshot(browser, "storefront-preferences")
    click_when_ready(browser, "#cc-main .pm button[data-role=necessary]")
    wait(browser).until(lambda d: not d.execute_script("return window.PrivacyConsent.allowed('analytics')"))
    assert "dropped (204)" in track(browser)
    assert browser.execute_script("return window.PrivacyConsent.consentMode().analytics_storage") == "denied"

    # A reload asks nothing more: the server remembers the choice.
    browser.get(live_demo.base + "/")
    wait(browser).until(lambda d: d.execute_script("return !!(window.PrivacyConsent && window.PrivacyConsent.get())"))
    assert (
        not browser.find_elements(By.CSS_SELECTOR, "#cc-main .cm")
        or not browser.find_element(By.CSS_SELECTOR, "#cc-main .cm").is_displayed()
    )


def test_centre_exports_and_deletes(browser: webdriver.Chrome, live_demo: LiveDemo, tmp_path: Path) -> None:
    subject, token = register(live_demo, "centre@example.com")
    sign_in(browser, live_demo, token)
    browser.get(live_demo.base + "/privacy/center/data")
    screenshot(browser, "centre-data")
    browser.find_element(By.ID, "export-button").click()
    target = tmp_path / "my-personal-data.json"
    wait(browser, 20).until(lambda d: target.exists() and target.stat().st_size > 0)
    assert json.loads(target.read_text())["subject"] == subject

    browser.get(live_demo.base + "/privacy/center/delete")
    browser.find_element(By.ID, "confirm-delete").click()
    browser.find_element(By.ID, "delete-button").click()
    receipt = wait(browser).until(ec.visibility_of_element_located((By.ID, "erasure-receipt")))
    assert receipt.text.count(".") == 2  # a compact JWS
    screenshot(browser, "centre-deleted")
    gone = httpx.get(f"{live_demo.base}/me", headers={"authorization": f"Bearer {token}"})
    assert gone.status_code == 404


def test_officer_resets_a_lockout_and_sees_the_overdue_request_first(
    browser: webdriver.Chrome, live_demo: LiveDemo
) -> None:
    register(live_demo, "locked@example.com")
    with httpx.Client(base_url=live_demo.base) as client:
        for _ in range(10):
            client.post("/auth/login", json={"email": "locked@example.com", "password": "wrong password"})
        assert client.post("/auth/login", json={"email": "locked@example.com", "password": PASSWORD}).status_code == 429
    rights = live_demo.app.runtime.rights
    assert rights is not None
    live_demo.run(rights.submit("access", "cus_fresh", principal="platform:test"))
    late, _ = live_demo.run(rights.submit("erasure", "cus_late", principal="platform:test"))

    async def make_overdue() -> None:
        async with live_demo.app.runtime.database.begin() as conn:
            past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
            await conn.execute(sa.update(rights_requests).where(rights_requests.c.id == late.id).values(due_at=past))
        await live_demo.app.runtime.audit.flush()

    live_demo.run(make_overdue())
    sign_in(browser, live_demo, live_demo.shop.token({"sub": "officer-1", "scope": "privacy:admin"}), "admin")
    first_row = browser.find_element(By.CSS_SELECTOR, "#queue-table tbody tr")
    assert first_row.get_attribute("data-request") == late.id and "overdue" in first_row.text
    screenshot(browser, "console")
    browser.find_element(By.CSS_SELECTOR, "#findings-table button[id^=reset-]").click()
    wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "p.notice[role=status]")))
    with httpx.Client(base_url=live_demo.base) as client:
        assert client.post("/auth/login", json={"email": "locked@example.com", "password": PASSWORD}).status_code == 200
    browser.find_element(By.ID, "verify-button").click()
    result = wait(browser).until(ec.visibility_of_element_located((By.ID, "verify-result")))
    assert "verified" in result.text
    browser.get(f"{live_demo.base}/privacy/admin/requests/{late.id}")
    screenshot(browser, "console-request")


PAGES = [
    ("storefront", "/", None),
    ("storefront-preferences", "/", None),
    ("centre-consent", "/privacy/center", None),
    ("centre-consent-de", "/privacy/center?lang=de", None),
    ("centre-consent-zh", "/privacy/center?lang=zh", None),
    ("centre-history", "/privacy/center/history", None),
    ("centre-notice", "/privacy/center/notice", None),
    ("centre-signin", "/privacy/center/signin", None),
    ("centre-access", "/privacy/center/access", "customer"),
    ("centre-data", "/privacy/center/data", "customer"),
    ("centre-restrict", "/privacy/center/restrict", "customer"),
    ("centre-delete", "/privacy/center/delete", "customer"),
    ("console-signin", "/privacy/admin/signin", None),
    ("console", "/privacy/admin", "officer"),
]


@pytest.mark.parametrize("who", [None, "customer", "officer"])
def test_no_serious_accessibility_violation_on_any_page(
    browser: webdriver.Chrome, live_demo: LiveDemo, axe_script: str, who: str | None
) -> None:
    pages = [(name, path) for name, path, needs in PAGES if needs == who]
    if who == "customer":
        _, token = register(live_demo, f"a11y-{id(browser)}@example.com")
        with httpx.Client(base_url=live_demo.base) as client:  # an order the carrier then reads
            order = {"items": [{"sku": "TEA-001", "qty": 1}], "shipping_address": {"name": "Ada", "city": "Leeds"}}
            client.post("/checkout", json=order, headers={"authorization": f"Bearer {token}"})
            carrier = client.post(
                "/partners/token", json={"client_id": "logistics-co", "client_secret": "demo-partner-secret"}
            ).json()["access_token"]
            client.get("/orders", headers={"authorization": f"Bearer {carrier}"})
        live_demo.run(live_demo.app.runtime.audit.flush())
        sign_in(browser, live_demo, token)
    elif who == "officer":
        rights = live_demo.app.runtime.rights
        assert rights is not None
        request, _ = live_demo.run(rights.submit("access", "cus_a11y", principal="platform:test"))
        pages.append(("console-request", f"/privacy/admin/requests/{request.id}"))
        pages.append(("error-page", "/privacy/admin/requests/no-such-request"))
        sign_in(browser, live_demo, live_demo.shop.token({"sub": "officer-2", "scope": "privacy:admin"}), "admin")
    failures = {}
    for name, path in pages:
        browser.get(live_demo.base + path)
        if name == "storefront":
            wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#cc-main .cm")))
        if name == "storefront-preferences":
            wait(browser).until(
                lambda d: d.execute_script("return !!(window.PrivacyConsent && window.PrivacyConsent.get())")
            )
            browser.find_element(By.ID, "cookie-settings").click()
            wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#cc-main .pm")))
        assert "/signin" not in browser.current_url or "signin" in name
        if name == "error-page":
            assert "Something went wrong" in browser.page_source
        screenshot(browser, f"a11y-{name}")
        violations = serious_violations(browser, axe_script)
        if violations:
            failures[name] = violations
    assert not failures, json.dumps(failures, indent=1)


def test_banner_respects_global_privacy_control(browser: webdriver.Chrome, live_demo: LiveDemo) -> None:
    # The browser sends Sec-GPC: 1 on every request (as a browser with GPC switched on does).
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Sec-GPC": "1"}})
    browser.get(live_demo.base + "/")
    modal = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#cc-main .cm")))
    # The banner fades in: its text reads as empty until the browser renders it as shown.
    wait(browser).until(lambda _: "Global Privacy Control" in modal.text)
    click_when_ready(browser, "#cc-main .cm button[data-role=all]")
    wait(browser).until(lambda d: d.execute_script("return window.PrivacyConsent.allowed('analytics')"))
    assert browser.execute_script("return window.PrivacyConsent.allowed('marketing')") is False
    assert browser.execute_script("return window.PrivacyConsent.consentMode().ad_storage") == "denied"
    browser.find_element(By.ID, "cookie-settings").click()
    prefs = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#cc-main .pm")))
    assert "Off: your browser sends Global Privacy Control." in prefs.text
    screenshot(browser, "storefront-gpc-preferences")
