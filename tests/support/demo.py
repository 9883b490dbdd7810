"""Helpers for tests that drive the demo shop behind the middleware over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.demo.shop import DemoShop
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.settings import JwtSettings, Settings

CARD = "4242 4242 4242 4242"


def demo_settings(data: Path, shop: DemoShop, **overrides: Any) -> Settings:
    """The demo policy on SQLite in `data`, a local keyring, and the demo shop's tokens accepted."""
    return Settings(
        policy_file=demo_policy_path(),
        database_url=f"sqlite+aiosqlite:///{data / 'p.db'}",
        data_dir=data,
        keys=f"local://{data / 'keyring.json'}",
        jwt=JwtSettings(
            issuer="demo-shop", audience="demo-shop-api", algorithms=["EdDSA"], public_key=shop.public_key_pem
        ),
        **overrides,
    )


def checkout_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "items": [{"sku": "TEA-001", "qty": 2}],
        "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
        "payment": {
            "card": {
                "number": CARD,
                "cvv": "737",
                "exp_month": 12,
                "exp_year": 2030,
                "holder": "Ada Lovelace",
            }
        },
        "shipping_address": {
            "name": "Ada Lovelace",
            "street": "12 Marylebone Road",
            "city": "London",
            "postal_code": "NW1 5LR",
            "country": "GB",
            "phone": "+44 20 7946 0018",
        },
        "billing_address": {
            "name": "Ada Lovelace",
            "street": "12 Marylebone Road",
            "city": "London",
            "postal_code": "NW1 5LR",
            "country": "GB",
        },
        "note": "Please ring twice.",
    }
    body.update(overrides)
    return body


@dataclass
class Demo:
    app: PrivacyMiddleware
    shop: DemoShop
    client: httpx.AsyncClient
    data_dir: Path

    async def register(self, email: str = "ada@example.com", birth_date: str = "1990-04-01") -> tuple[str, str]:
        response = await self.client.post(
            "/auth/register",
            json={
                "email": email,
                "password": "correct horse battery",
                "name": "Ada Lovelace",
                "phone": "+44 20 7946 0018",
                "birth_date": birth_date,
            },
        )
        assert response.status_code == 201, response.text
        return response.json()["id"], response.json()["token"]

    async def partner(self, client_id: str) -> str:
        response = await self.client.post(
            "/partners/token", json={"client_id": client_id, "client_secret": "demo-partner-secret"}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def checkout(self, token: str, **overrides: Any) -> httpx.Response:
        return await self.client.post(
            "/checkout", json=checkout_body(**overrides), headers={"authorization": f"Bearer {token}"}
        )
