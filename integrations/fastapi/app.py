"""A FastAPI shop with the privacy middleware around it: `uvicorn app:app`."""

from typing import Any

from fastapi import FastAPI

from privacy_middleware.middleware import PrivacyMiddleware

ORDER = {
    "id": "ord_1",
    "customer_id": "cus_1",
    "total": 17.0,
    "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
    "shipping_address": {"street": "1 Tea Lane", "city": "Leeds", "country": "GB"},
}

shop = FastAPI(title="Example shop")


@shop.get("/api/orders/{order_id}")
def order(order_id: str) -> dict[str, Any]:
    return {**ORDER, "id": order_id}


app = PrivacyMiddleware(shop)  # settings from PRIVACY_*, policy from ./privacy-policy.toml
