"""Dependencies down under a running instance. The store (PostgreSQL) cut off: key routes answer 503
with a code, routes without a plan pass through, logins keep working, and every audit event is
spooled and replayed when the store is back. The key service (moto's KMS server on loopback)
stopped: key routes answer 503 `key_service_unavailable`, every other route keeps working."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import sqlalchemy as sa

from privacy_middleware.audit.query import search
from privacy_middleware.demo.run import build_demo
from privacy_middleware.demo.shop import customers, orders
from support.demo import Demo, checkout_body
from support.ports import free_port
from support.postgres import cut_off, restore

pytestmark = pytest.mark.anyio


@pytest.mark.postgres
async def test_store_outage_gives_503_on_key_routes_and_loses_no_audit_event(
    tmp_path: Path, postgres_url: str, asgi_lifespan: Any
) -> None:
    app, shop = build_demo(tmp_path, database_url=postgres_url, audit={"retention_interval_seconds": 0})
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 40000))
    async with asgi_lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        demo = Demo(app, shop, client, tmp_path)
        _, token = await demo.register()
        order = await demo.checkout(token)
        assert order.status_code == 201, order.text
        auth = {"authorization": f"Bearer {token}"}
        await app.runtime.audit.flush()
        await cut_off(postgres_url)
        try:
            await asyncio.sleep(1.1)  # past the erasure bound: cached keys are no longer trusted
            assert (await client.get("/health")).status_code == 200  # no plan: untouched
            refused = await demo.checkout(token)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] in {"key_store_unavailable", "store_unavailable"}
            # The customer's own order reveals the card number (a strict audit category): 503 with a code,
            # never the order in clear.
            reveal = await client.get(f"/orders/{order.json()['id']}", headers=auth)
            assert reveal.status_code == 503, reveal.text
            assert reveal.headers["content-type"].startswith("application/problem+json")
            assert reveal.json()["code"] in {"key_store_unavailable", "store_unavailable", "audit_unavailable"}
            assert "4242" not in reveal.text
            wrong = {"email": "ada@example.com", "password": "wrong"}
            assert [(await client.post("/auth/login", json=wrong)).status_code for _ in range(3)] == [401] * 3
            await app.runtime.audit.flush()
        finally:
            await restore(postgres_url)
        assert (await client.get(f"/orders/{order.json()['id']}", headers=auth)).status_code == 200
        await app.runtime.audit.flush()
        failures = await search(app.runtime.database, kinds=["authentication.logon"])
        assert sum(1 for e in failures if e.document and e.document["status"] == "failure") == 3


@pytest.mark.postgres
async def test_an_instance_started_during_a_store_outage_passes_through_then_recovers(
    tmp_path: Path, postgres_url: str, asgi_lifespan: Any
) -> None:
    """A worker (re)started while PostgreSQL refuses connections starts anyway: what needs no store
    works, what does answers 503 with a code (never the body in clear), and all of it recovers
    once the store is back, without a restart."""
    await cut_off(postgres_url)
    try:
        app, shop = build_demo(tmp_path, database_url=postgres_url, audit={"retention_interval_seconds": 0})
        transport = httpx.ASGITransport(app=app, client=("198.51.100.21", 40000))
        async with asgi_lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            demo = Demo(app, shop, client, tmp_path)
            assert (await client.get("/health")).status_code == 200  # no plan: untouched
            assert (await client.get("/products")).status_code == 200
            for refused in (
                await client.get("/privacy/health"),
                await client.post("/auth/register", json={"email": "ada@example.com", "password": "pw-12345678"}),
                await client.post("/checkout", json=checkout_body()),
            ):
                assert refused.status_code == 503, refused.text
                assert refused.headers["content-type"].startswith("application/problem+json")
                assert refused.json()["code"] == "store_unavailable"
                assert refused.headers["retry-after"] == "5"
            async with shop.engine.connect() as conn:  # neither the customer nor the order reached the shop
                counts = [
                    (await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar()
                    for t in (customers, orders)
                ]
            assert counts == [0, 0]
            await restore(postgres_url)
            await asyncio.sleep(1.1)  # past the retry interval of a start that could not reach the store
            assert (await client.get("/privacy/health")).status_code == 200
            _, token = await demo.register()
            order = await demo.checkout(token)
            assert order.status_code == 201, order.text
    finally:
        await restore(postgres_url)


class MotoKms:
    """moto's KMS in server mode on loopback: a real key service this test can stop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)

    def create_key(self) -> str:
        client = boto3.client(
            "kms",
            region_name="eu-west-1",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        return str(client.create_key()["KeyMetadata"]["KeyId"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoKms]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    server = MotoKms()
    try:
        yield server
    finally:
        server.stop()


async def test_key_service_outage_gives_503_on_key_routes_only(
    tmp_path: Path, kms: MotoKms, asgi_lifespan: Any
) -> None:
    keys = f"awskms://{kms.create_key()}?region=eu-west-1&endpoint={kms.url}"
    allow = {"allow": ["127.0.0.1/32"]}  # KMS on loopback is a configured destination
    first, shop = build_demo(tmp_path, keys=keys, outbound=allow)
    transport = httpx.ASGITransport(app=first, client=("198.51.100.21", 40000))
    async with asgi_lifespan(first), httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        demo = Demo(first, shop, client, tmp_path)
        _, token = await demo.register()
        placed = await demo.checkout(token)
        assert placed.status_code == 201, placed.text  # the tenant key was made and wrapped by KMS
    kms.stop()
    # An instance starting while KMS is down (or one whose tenant-key cache expired) cannot unwrap.
    app, _ = build_demo(tmp_path, shop=shop, keys=keys, outbound=allow)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.21", 40000))
    async with asgi_lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        demo = Demo(app, shop, client, tmp_path)
        auth = {"authorization": f"Bearer {token}"}
        for refused in (await demo.checkout(token), await client.get(f"/orders/{placed.json()['id']}", headers=auth)):
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] == "key_service_unavailable"
            assert "Marylebone" not in refused.text and "4242" not in refused.text
        # Routes that need no key keep working: pass-through, the shop's health, the privacy API.
        products = await client.get("/products")
        assert products.status_code == 200 and products.json()["products"]
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/privacy/policy")).status_code == 200
