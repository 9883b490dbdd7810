"""No secret or personal value in any log line at any level, over the demo's whole journey.

Every logger that takes part (root, privacy_middleware.*, uvicorn.*, httpx, httpcore, sqlalchemy,
aiosqlite, asyncio) is set to DEBUG and every record is captured, formatted and with its extra
fields, while the demo shop runs behind the middleware under real uvicorn (access log on) and
behind `serve --upstream` (the reverse proxy): register and log in, consent, tracking, checkout with a
card and addresses, order reads by the owner and the logistics partner, export, erasure, and a
request that carries an order access token in its query string. The captured text is then searched
for each value the journey used: the card number in both spellings, the CVV, e-mail, street, phone,
password, birth date, every JWT, every cookie value, the query-string token and the key material
the middleware keeps in its data directory.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from privacy_middleware.demo.run import build_demo, demo_policy_path
from privacy_middleware.demo.shop import SHOP_AUDIENCE, SHOP_ISSUER, DemoShop
from privacy_middleware.serve import build_proxy_app
from privacy_middleware.settings import JwtSettings, Settings
from support.demo import checkout_body

CARD = "4111 1111 1111 1111"
CVV = "7318"
EMAIL = "grace.logscan@example.com"
STREET = "17 Wapping Lane"
PHONE = "+44 20 7946 0991"
PASSWORD = "logscan horse battery staple"
BIRTH = "1985-12-09"
ORDER_TOKEN = "ordtok-5f1c9e2a7b3d4e6f"
CONSENT = {"x-privacy-consent": "1"}
LOGGERS = (
    "",
    "privacy_middleware",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "httpx",
    "httpcore",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "aiosqlite",
    "asyncio",
    "multipart",
)
STANDARD = set(logging.LogRecord("x", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class Capture(logging.Handler):
    """Every record as a line: the formatted message, the exception text and any extra fields."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        extra = {k: v for k, v in record.__dict__.items() if k not in STANDARD}
        self.lines.append(f"{self.format(record)} {extra!r}")


@contextmanager
def everything_at_debug() -> Iterator[Capture]:
    capture = Capture()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [(logger.level, logger.propagate, logger.disabled) for logger in loggers]
    for logger in loggers:  # whatever earlier servers' logging configs did to them
        logger.setLevel(logging.DEBUG)
        logger.propagate = True
        logger.disabled = False
    logging.getLogger().addHandler(capture)
    try:
        yield capture
    finally:
        logging.getLogger().removeHandler(capture)
        for logger, (level, propagate, disabled) in zip(loggers, saved, strict=True):
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


@contextmanager
def uvicorn_debug(app: Any) -> Iterator[str]:
    """uvicorn with its access log on and at debug level, logging through the root logger."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_config=None, log_level="debug", access_log=True, lifespan="on", ws="none", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def body() -> dict[str, Any]:
    order = checkout_body(customer={"email": EMAIL, "name": "Grace Hopper"})
    order["payment"]["card"].update(number=CARD, cvv=CVV, holder="Grace Hopper")
    for kind in ("shipping_address", "billing_address"):
        order[kind].update(street=STREET, name="Grace Hopper")
    order["shipping_address"]["phone"] = PHONE
    return order


def journey(client: httpx.Client, secrets: set[str], *, rights: bool) -> None:
    """The demo's flows; every token and cookie value the server hands out joins `secrets`."""
    registered = client.post(
        "/auth/register",
        json={"email": EMAIL, "password": PASSWORD, "name": "Grace Hopper", "phone": PHONE, "birth_date": BIRTH},
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["token"]
    login = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 200, login.text
    secrets.update({token, login.json()["token"]})
    auth = {"authorization": f"Bearer {token}"}
    assert client.post("/track", json={"event": "page_view", "email": EMAIL}).status_code in (202, 204)
    consent = client.put("/privacy/consent", json={"purposes": {"analytics": True}}, headers=CONSENT)
    assert consent.status_code == 200, consent.text
    assert client.post("/track", json={"event": "page_view"}).status_code == 202
    order = client.post("/checkout", json=body(), headers=auth)
    assert order.status_code == 201, order.text
    order_id = order.json()["id"]
    assert client.get("/orders", headers=auth).status_code == 200
    own = client.get(f"/orders/{order_id}", headers=auth)
    assert own.status_code == 200 and own.json()["shipping_address"]["street"] == STREET
    partner = client.post("/partners/token", json={"client_id": "logistics-co", "client_secret": "demo-partner-secret"})
    partner_token = partner.json()["access_token"]
    secrets.add(partner_token)
    seen = client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {partner_token}"})
    assert seen.status_code == 200 and CARD.replace(" ", "") not in seen.text and CARD not in seen.text
    linked = client.get(f"/orders/{order_id}?token={ORDER_TOKEN}&email={EMAIL}", headers=auth)
    assert linked.status_code == 200
    if rights:
        assert client.get("/privacy/me/export", headers=auth).status_code == 200
        erased = client.post("/privacy/me/erasure", headers=auth)
        assert erased.status_code in (200, 202), erased.text
    secrets.update(value for value in client.cookies.values() if len(value) >= 8)


def key_material(data_dir: Path) -> set[str]:
    """The secrets the middleware keeps in its data directory: keys, keyring entries, PEM bodies."""
    found: set[str] = set()
    for path in data_dir.iterdir():
        if path.suffix == ".key":
            found.add(path.read_text().strip())
        elif path.suffix == ".pem":
            found.update(line for line in path.read_text().splitlines() if line and not line.startswith("-----"))
        elif path.name == "keyring.json":
            found.update(re.findall(r'"([A-Za-z0-9+/=_-]{24,})"', path.read_text()))
    return {value for value in found if len(value) >= 16}


def leaks(lines: list[str], secrets: set[str]) -> list[str]:
    text = "\n".join(lines)
    plain = [CARD, CARD.replace(" ", ""), EMAIL, STREET, PHONE, PHONE.replace(" ", ""), PASSWORD, BIRTH, ORDER_TOKEN]
    found = [value for value in [*plain, *secrets] if value in text]
    found += [CVV] if re.search(rf"(?<![0-9A-Za-z.]){CVV}(?![0-9A-Za-z])", text) else []
    found += ["a query string"] if re.search(r"\?(token|email)=", text) else []
    report = []
    for value in found:
        probe = value if value != "a query string" else "?"
        hits = [line for line in lines if probe in line or (value == CVV and re.search(CVV, line))]
        report.append(f"{value[:12]}... in {len(hits)} lines, e.g.: " + " || ".join(h[:240] for h in hits[:3]))
    return report


def test_demo_journey_at_debug_logs_no_secret_or_personal_value(tmp_path: Path) -> None:
    secrets: set[str] = set()
    with everything_at_debug() as capture:
        app, _ = build_demo(tmp_path / "inprocess", log_level="DEBUG", audit={"retention_interval_seconds": 0})
        with uvicorn_debug(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            journey(client, secrets, rights=True)
        # The same shop as a separate upstream behind `serve --upstream` (the reverse proxy).
        shop = DemoShop(tmp_path / "proxied")
        settings = Settings(
            policy_file=demo_policy_path(),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'proxied' / 'privacy.db'}",
            keys=f"local://{tmp_path / 'proxied' / 'keyring.json'}",
            data_dir=tmp_path / "proxied",
            consent={"secure_cookie": False},
            jwt=JwtSettings(
                issuer=SHOP_ISSUER, audience=SHOP_AUDIENCE, algorithms=["EdDSA"], public_key=shop.public_key_pem
            ),
            log_level="DEBUG",
            audit={"retention_interval_seconds": 0},
        )
        with uvicorn_debug(shop.app) as upstream:
            proxy = build_proxy_app(upstream, settings)
            with uvicorn_debug(proxy) as url, httpx.Client(base_url=url, timeout=30) as client:
                journey(client, secrets, rights=False)
    keys = key_material(tmp_path / "inprocess") | key_material(tmp_path / "proxied")
    assert len(keys) >= 10 and len(secrets) >= 6  # keys, keyrings, PEMs; JWTs and cookie values
    secrets |= keys
    lines = capture.lines
    assert len(lines) > 200 and any("httpcore" in line for line in lines)  # the capture saw everything
    assert any("uvicorn.access" in line for line in lines) and any("HTTP Request" in line for line in lines)
    found = leaks(lines, secrets)
    assert not found, "\n".join(found)
    json.dumps(lines)  # every line is plain text
