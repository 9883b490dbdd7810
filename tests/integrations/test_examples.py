"""The runnable examples in integrations/ work as their READMEs say: each README's three commands
are run (the `pip install` aside: the packages are installed here) in the example's folder, on a
free port, and what the README promises is checked over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

import privacy_middleware
from privacy_middleware.integrations.saleor.webhooks import ERASURE_EVENTS
from privacy_middleware.integrations.shopify.webhooks import COMPLIANCE_TOPICS
from privacy_middleware.integrations.woocommerce.webhooks import TOPICS as WOOCOMMERCE_TOPICS
from privacy_middleware.policy.load import load_policy

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "integrations"
SRC = Path(privacy_middleware.__file__).resolve().parents[1]
PLATFORMS = ["django", "fastapi", "saleor", "shopify", "woocommerce"]


def readme_commands(example: str) -> list[str]:
    readme = (EXAMPLES / example / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert found is not None, f"{example}/README.md has no sh block"
    return [line for line in found.group(1).splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def run_example(example: str, tmp_path: Path, *, upstream: str | None = None, **extra_env: str) -> Iterator[str]:
    """Run the README's commands; yield the base URL once the privacy API answers."""
    install, export, command = readme_commands(example)
    assert install.startswith("pip install privacy-middleware")
    words = shlex.split(export)
    assert words[0] == "export"
    env = {**os.environ, **dict(word.split("=", 1) for word in words[1:])}
    env.update(
        PYTHONPATH=os.pathsep.join([str(SRC), str(EXAMPLES / example), str(Path(__file__).parent)]),
        PRIVACY_DATA_DIR=str(tmp_path),
        PRIVACY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}",
        **extra_env,
    )
    argv = shlex.split(command)
    program = {"uvicorn": ["-m", "uvicorn"], "privacy-middleware": ["-m", "privacy_middleware.cli"]}[argv[0]]
    argv = [sys.executable, *program, *argv[1:]]
    if upstream is not None:
        argv[argv.index("--upstream") + 1] = upstream
    port = free_port()
    process = subprocess.Popen(
        [*argv, "--port", str(port), "--log-level", "warning"],
        cwd=EXAMPLES / example,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/privacy/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, errors = process.communicate()
                raise AssertionError(f"{example} did not start: {errors.decode(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def bearer(example: str, claims: dict[str, Any]) -> dict[str, str]:
    secret = dict(w.split("=", 1) for w in shlex.split(readme_commands(example)[1])[1:])["PRIVACY_JWT__SECRET"]
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 600, **claims}, secret, algorithm="HS256")
    return {"authorization": f"Bearer {token}"}


@contextmanager
def upstream_serving(documents: dict[str, Any]) -> Iterator[str]:
    """A shop on loopback answering GET <path> with a JSON document (the proxy's upstream)."""

    class Shop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            document = documents.get(self.path.split("?")[0])
            body = json.dumps(document).encode()
            self.send_response(200 if document is not None else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("example", PLATFORMS)
def test_every_example_has_three_commands_and_a_policy_that_loads(example: str) -> None:
    commands = readme_commands(example)
    assert len(commands) == 3
    load_policy(EXAMPLES / example / "privacy-policy.toml")


@pytest.mark.parametrize("example", ["django", "fastapi"])
def test_in_process_shop_filters_its_orders_per_recipient(example: str, tmp_path: Path) -> None:
    if example == "fastapi":
        pytest.importorskip("fastapi")
    with run_example(example, tmp_path) as base:
        anonymous = httpx.get(f"{base}/api/orders/ord_1").json()
        carrier = httpx.get(
            f"{base}/api/orders/ord_1", headers=bearer(example, {"sub": "carrier", "recipient": "logistics"})
        ).json()
        customer = httpx.get(f"{base}/api/orders/ord_1", headers=bearer(example, {"sub": "cus_1"})).json()
    assert anonymous == {"id": "ord_1", "total": 17.0, "customer": {}, "shipping_address": {}}
    assert carrier["shipping_address"] == {"street": "1 Tea Lane", "city": "Leeds", "country": "GB"}
    assert carrier["customer"] == {"name": "Ada Lovelace"} and "customer_id" not in carrier
    assert customer["customer"]["email"] == "ada@example.com"


def shopify_signed(body: bytes, topic: str, secret: str) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"x-shopify-topic": topic, "x-shopify-hmac-sha256": digest, "content-type": "application/json"}


def test_shopify_app_config_subscribes_the_compliance_topics_to_the_proxy() -> None:
    config = tomllib.loads((EXAMPLES / "shopify" / "shopify.app.toml").read_text(encoding="utf-8"))
    [subscription] = config["webhooks"]["subscriptions"]
    assert set(subscription["compliance_topics"]) == set(COMPLIANCE_TOPICS)
    assert subscription["uri"].endswith("/privacy/webhooks/shopify")


def test_shopify_proxy_filters_the_admin_api_and_takes_compliance_webhooks(tmp_path: Path) -> None:
    order = {"id": 1, "email": "ada@example.com", "total_price": "17.00", "customer": {"id": 191167, "email": "a@b"}}
    secret = dict(w.split("=", 1) for w in shlex.split(readme_commands("shopify")[1])[1:])[
        "PRIVACY_WEBHOOKS__SHOPIFY_SECRETS"
    ]
    with (
        upstream_serving({"/admin/api/2025-10/orders/1.json": {"order": order}}) as shop,
        run_example("shopify", tmp_path, upstream=shop) as base,
    ):
        seen = httpx.get(f"{base}/admin/api/2025-10/orders/1.json").json()["order"]
        body = json.dumps({"shop_domain": "example.myshopify.com", "customer": {"id": 191167}}).encode()
        queued = httpx.post(
            f"{base}/privacy/webhooks/shopify", content=body, headers=shopify_signed(body, "customers/redact", secret)
        )
        forged = httpx.post(
            f"{base}/privacy/webhooks/shopify", content=body, headers=shopify_signed(body, "customers/redact", "x")
        )
    assert seen["id"] == 1 and seen["total_price"] == "17.00"
    assert "email" not in seen and seen["customer"] == {}
    assert queued.status_code == 200 and queued.json()["status"] == "queued"
    assert forged.status_code == 401


def test_woocommerce_proxy_filters_orders_and_takes_the_customer_deleted_webhook(tmp_path: Path) -> None:
    setup = json.loads((EXAMPLES / "woocommerce" / "webhook.json").read_text(encoding="utf-8"))
    assert setup["topic"] in WOOCOMMERCE_TOPICS and setup["delivery_url"].endswith("/privacy/webhooks/woocommerce")
    order = {"id": 7, "customer_id": 42, "total": "17.00", "billing": {"email": "ada@example.com"}}
    secret = dict(w.split("=", 1) for w in shlex.split(readme_commands("woocommerce")[1])[1:])[
        "PRIVACY_WEBHOOKS__WOOCOMMERCE_SECRETS"
    ]
    with (
        upstream_serving({"/wp-json/wc/v3/orders/7": order}) as shop,
        run_example("woocommerce", tmp_path, upstream=shop) as base,
    ):
        seen = httpx.get(f"{base}/wp-json/wc/v3/orders/7").json()
        body = json.dumps({"id": 42}).encode()
        signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        queued = httpx.post(
            f"{base}/privacy/webhooks/woocommerce",
            content=body,
            headers={"x-wc-webhook-topic": "customer.deleted", "x-wc-webhook-signature": signature},
        )
        ping = httpx.post(f"{base}/privacy/webhooks/woocommerce", content=b"webhook_id=3")
    assert seen["id"] == 7 and seen["total"] == "17.00"
    assert "customer_id" not in seen and seen["billing"] == {}
    assert queued.status_code == 200 and queued.json()["status"] == "queued"
    assert ping.status_code == 200


def test_saleor_manifest_subscribes_the_erasure_events_to_the_middleware() -> None:
    manifest = json.loads((EXAMPLES / "saleor" / "app-manifest.json").read_text(encoding="utf-8"))
    events = {event.lower() for hook in manifest["webhooks"] for event in hook["asyncEvents"]}
    assert events == set(ERASURE_EVENTS)
    for hook in manifest["webhooks"]:
        assert hook["targetUrl"].endswith("/privacy/webhooks/saleor")
        assert "user { id }" in hook["query"]


def test_saleor_wrapper_serves_saleor_and_takes_signed_webhooks(tmp_path: Path) -> None:
    secret = "legacy-secret-key"
    with run_example(
        "saleor", tmp_path, SALEOR_ASGI_APP="saleor_standin:application", PRIVACY_WEBHOOKS__SALEOR_SECRET=secret
    ) as base:
        passed = httpx.get(f"{base}/standin").json()
        body = json.dumps({"user": {"id": "VXNlcjox"}}).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        queued = httpx.post(
            f"{base}/privacy/webhooks/saleor",
            content=body,
            headers={"saleor-event": "account_deleted", "saleor-signature": signature},
        )
        forged = httpx.post(
            f"{base}/privacy/webhooks/saleor",
            content=body,
            headers={"saleor-event": "account_deleted", "saleor-signature": "0" * 64},
        )
    assert passed == {"saleor": "stand-in"}
    assert queued.status_code == 200 and queued.json()["status"] == "queued"
    assert forged.status_code == 401
