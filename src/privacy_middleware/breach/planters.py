"""Planting canaries through the shop's own declared routes, as a customer would.

The decoy goes through the middleware exactly like a real sign-up and checkout (its card and
address are encrypted on the way in), so nothing about how it is stored gives it away. The route
paths and body shapes default to the demo shop's API; other shops pass their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import PrivacyError
from .canaries import PlantedCanary


@dataclass(frozen=True, slots=True)
class RoutePlanter:
    """Registers a decoy customer, then places `orders` orders in their name."""

    client: httpx.AsyncClient
    register_path: str = "/auth/register"
    login_path: str = "/auth/login"
    order_path: str = "/checkout"
    orders: int = 1
    sku: str = "TEA-001"

    async def plant(self, profile: dict[str, Any]) -> PlantedCanary:
        registration = {k: profile[k] for k in ("email", "password", "name", "phone", "birth_date")}
        response = await self.client.post(self.register_path, json=registration)
        body = _json(response, "register")
        customer_id = str(body.get("id") or "")
        token = body.get("token")
        if not token:
            login = await self.client.post(
                self.login_path, json={"email": profile["email"], "password": profile["password"]}
            )
            token = _json(login, "login").get("token")
        if not customer_id or not isinstance(token, str):
            raise PrivacyError("canary_plant_failed", "The shop did not return the decoy's id and token.", 502)
        order_ids = []
        for _ in range(self.orders):
            order = await self.client.post(
                self.order_path,
                json=_order(profile, self.sku),
                headers={"authorization": f"Bearer {token}"},
            )
            order_id = _json(order, "order").get("id")
            if not isinstance(order_id, str):
                raise PrivacyError("canary_plant_failed", "The shop did not return the decoy order's id.", 502)
            order_ids.append(order_id)
        return PlantedCanary(customer_id, tuple(order_ids), profile["name"])


def _json(response: httpx.Response, step: str) -> dict[str, Any]:
    if response.status_code >= 300:
        raise PrivacyError("canary_plant_failed", f"The shop refused the decoy {step} ({response.status_code}).", 502)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PrivacyError("canary_plant_failed", f"The shop's {step} answer is not a JSON object.", 502)
    return body


def _order(profile: dict[str, Any], sku: str) -> dict[str, Any]:
    address = {
        "name": profile["name"],
        "street": profile["street"],
        "city": profile["city"],
        "postal_code": profile["postal_code"],
        "country": profile["country"],
    }
    return {
        "items": [{"sku": sku, "qty": 1}],
        "customer": {"email": profile["email"], "name": profile["name"]},
        "payment": {
            "card": {
                "number": profile["card"],
                "exp_month": 12,
                "exp_year": 2031,
                "holder": profile["name"],
            }
        },
        "shipping_address": {**address, "phone": profile["phone"]},
        "billing_address": address,
        "note": "",
    }
