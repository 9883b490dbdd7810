"""A platform's privacy webhook, configured by environment, feeds the subject-request queue."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from privacy_middleware.demo.run import build_demo

pytestmark = pytest.mark.anyio

SECRET = "shpss_demo_app_secret_0123456789"


def signed(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def test_shopify_redact_webhook_erases_the_customer(tmp_path: Path, asgi_lifespan: Any) -> None:
    app, _ = build_demo(tmp_path, audit={"retention_interval_seconds": 0}, webhooks={"shopify_secrets": [SECRET]})
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        registered = await client.post(
            "/auth/register", json={"email": "ada@example.com", "password": "p" * 12, "birth_date": "1990-01-01"}
        )
        customer = registered.json()["id"]
        token = registered.json()["token"]
        body = orjson.dumps(
            {
                "shop_id": 954889,
                "shop_domain": "tea.myshopify.com",
                "customer": {"id": customer, "email": "ada@example.com"},
                "orders_to_redact": [],
            }
        )
        headers = {
            "content-type": "application/json",
            "x-shopify-topic": "customers/redact",
            "x-shopify-shop-domain": "tea.myshopify.com",
            "x-shopify-webhook-id": "d1",
        }
        forged = await client.post(
            "/privacy/webhooks/shopify",
            content=body,
            headers={**headers, "x-shopify-hmac-sha256": signed(body, "wrong")},
        )
        assert forged.status_code == 401
        accepted = await client.post(
            "/privacy/webhooks/shopify", content=body, headers={**headers, "x-shopify-hmac-sha256": signed(body)}
        )
        assert accepted.status_code == 200
        for _ in range(100):
            requests = (await client.get("/privacy/me/requests", headers={"authorization": f"Bearer {token}"})).json()[
                "requests"
            ]
            if requests and requests[0]["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        assert [(r["type"], r["status"]) for r in requests] == [("erasure", "completed")]
        again = await client.post(
            "/privacy/webhooks/shopify", content=body, headers={**headers, "x-shopify-hmac-sha256": signed(body)}
        )
        assert again.status_code == 200 and "duplicate" in again.text
