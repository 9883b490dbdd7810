"""Fixtures for the rights tests: the demo shop behind the middleware with the rights API mounted,
a real audit writer on the privacy store, and the demo shop adapter on the shop's SQLite database."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy_middleware.audit import AuditWriter, search
from privacy_middleware.demo.adapter import DemoShopAdapter
from privacy_middleware.demo.run import build_demo
from privacy_middleware.keyfiles import load_or_create_signing_key
from privacy_middleware.rights.service import RightsService, receipt_key_path
from privacy_middleware.store.consent import ConsentRepository
from privacy_middleware.store.consent_records import ConsentRecord, Holder
from support.demo import Demo

ADMIN_SCOPE = "privacy:admin"


@dataclass
class RightsDemo:
    demo: Demo
    service: RightsService
    adapter: DemoShopAdapter
    audit: AuditWriter
    signing_key: Ed25519PrivateKey
    http: httpx.AsyncClient

    @property
    def client(self) -> httpx.AsyncClient:
        return self.demo.client

    def admin_token(self) -> str:
        return self.demo.shop.token({"sub": "dpo-1", "scope": ADMIN_SCOPE})

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    async def consent(self, subject: str) -> None:
        """A consent record as the consent API would have stored it."""
        await ConsentRepository(self.service.database).append(
            ConsentRecord(
                id=ConsentRecord.new_id(),
                holder=Holder.subject(subject),
                purposes={"analytics": True, "marketing": False},
                policy_version="2026.11",
                method="banner",
                recorded_at=dt.datetime.now(dt.UTC),
                ip_prefix="198.51.100.0/24",
                receipt="receipt-jws",
            )
        )

    async def stored_events(self, subject: str) -> list[dict[str, Any]]:
        await self.audit.flush()
        return [
            r.document
            for r in await search(self.service.database, subject=subject, limit=1000)
            if r.document is not None
        ]

    @staticmethod
    def dump(path: Path) -> str:
        """Everything a SQLite database holds, as one string to search for personal values."""
        connection = sqlite3.connect(path)
        try:
            return "\n".join(connection.iterdump())
        finally:
            connection.close()

    async def customer_with_order(self, email: str = "ada@example.com") -> tuple[str, str, dict[str, Any]]:
        subject, token = await self.demo.register(email=email)
        response = await self.demo.checkout(token, customer={"email": email, "name": "Ada Lovelace"})
        assert response.status_code == 201, response.text
        return subject, token, response.json()


@pytest.fixture
async def rights(tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[RightsDemo]:
    """The demo shop behind the middleware with subject rights wired as the runtime wires them."""
    # The server's periodic retention is tested on its own; here it must not race the test.
    app, shop = build_demo(tmp_path, audit={"retention_interval_seconds": 0})
    runtime = app.runtime
    assert runtime.rights is not None and isinstance(runtime.adapter, DemoShopAdapter)
    key = load_or_create_signing_key(receipt_key_path(tmp_path))
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.20", 40000)), base_url="http://shop"
        ) as client,
    ):
        yield RightsDemo(
            Demo(app, shop, client, tmp_path),
            runtime.rights,
            runtime.adapter,
            runtime.audit,
            key,
            runtime.http,
        )
