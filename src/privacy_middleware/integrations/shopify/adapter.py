"""Shopify adapter over the GraphQL Admin API (version `SHOPIFY_API_VERSION`), the API Shopify
requires for new public apps (REST Admin is legacy since 2024-10).

Calls `POST https://{shop}.myshopify.com/admin/api/{version}/graphql.json` with the app's
`X-Shopify-Access-Token`. Scopes needed: `read_customers`, `write_customers`, `read_orders`
(`read_all_orders` for orders older than 60 days), `write_orders` for retention deletes, and
`write_customer_data_erasure` for erasure.

Subjects are Shopify customer ids, numeric (as in the compliance webhooks) or as GIDs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from ...rights.adapter import ErasureOutcome, RetentionItem, ShopAdapterError, ShopRecord
from ..common import graphql, user_errors

SHOPIFY_API_VERSION = "2025-10"
SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,98}\.myshopify\.com$")
CUSTOMER_GID = re.compile(r"^gid://shopify/Customer/(\d{1,20})$")
PAGE_SIZE = 50
MAX_PAGES = 200  # 10 000 orders per subject or retention sweep, then stop and say so
# Categories an order carries in the Shopify preset (retention sweeps look at orders only).
ORDER_CATEGORIES = ("user.name", "user.contact", "user.content.order_note", "user.financial")
RECTIFIABLE = {"firstName", "lastName", "email", "phone", "note"}

ADDRESS_FIELDS = (
    "firstName lastName company address1 address2 city province provinceCode zip country countryCodeV2 phone"
)
RECORDS_QUERY = f"""
query PrivacySubjectRecords($id: ID!, $after: String) {{
  customer(id: $id) {{
    id firstName lastName email phone note createdAt updatedAt
    addresses {{ {ADDRESS_FIELDS} }}
    orders(first: {PAGE_SIZE}, after: $after) {{
      nodes {{
        id name createdAt email phone note
        shippingAddress {{ {ADDRESS_FIELDS} }}
        billingAddress {{ {ADDRESS_FIELDS} }}
      }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}
"""
ERASE_MUTATION = """
mutation PrivacyErase($customerId: ID!) {
  customerRequestDataErasure(customerId: $customerId) {
    customerId
    userErrors { field message code }
  }
}
"""
UPDATE_MUTATION = """
mutation PrivacyRectify($input: CustomerInput!) {
  customerUpdate(input: $input) {
    customer { id }
    userErrors { field message }
  }
}
"""
EXPIRED_QUERY = f"""
query PrivacyExpiredOrders($query: String!, $after: String) {{
  orders(first: {PAGE_SIZE}, after: $after, query: $query, sortKey: CREATED_AT) {{
    nodes {{ id createdAt }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""
DELETE_ORDER_MUTATION = """
mutation PrivacyDeleteOrder($orderId: ID!) {
  orderDelete(orderId: $orderId) {
    deletedId
    userErrors { field message code }
  }
}
"""


def customer_gid(subject: str) -> str:
    subject = subject.strip()
    if subject.isdigit() and len(subject) <= 20:
        return f"gid://shopify/Customer/{subject}"
    if CUSTOMER_GID.match(subject):
        return subject
    raise ShopAdapterError("the subject is not a Shopify customer id")


def _timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class ShopifyAdapter:
    """`ShopAdapter` for one Shopify shop. `http` is shared and owned by the caller."""

    name = "shopify"

    def __init__(
        self,
        *,
        shop: str,
        access_token: str | SecretStr,
        http: httpx.AsyncClient,
        api_version: str = SHOPIFY_API_VERSION,
    ) -> None:
        shop = shop.strip().lower()
        if not SHOP_DOMAIN.match(shop):
            raise ValueError("shop must be the shop's myshopify.com domain")
        self.shop = shop
        self.endpoint = f"https://{shop}/admin/api/{api_version}/graphql.json"
        token = access_token.get_secret_value() if isinstance(access_token, SecretStr) else access_token
        self._headers = {"x-shopify-access-token": token}
        self.http = http

    async def _query(self, query: str, variables: dict[str, Any], operation: str) -> dict[str, Any]:
        return await graphql(self.http, self.endpoint, self._headers, query, variables, operation)

    async def records(self, subject: str) -> list[ShopRecord]:
        gid = customer_gid(subject)
        records: list[ShopRecord] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            data = await self._query(RECORDS_QUERY, {"id": gid, "after": after}, "shopify records")
            customer = data.get("customer")
            if not isinstance(customer, dict):
                return records
            orders = customer.pop("orders", None) or {}
            if after is None:
                records.append(
                    ShopRecord(
                        "customer",
                        str(customer.get("id", gid)),
                        customer,
                        "shopify_customer",
                        _timestamp(customer.get("createdAt")),
                    )
                )
            for order in orders.get("nodes") or []:
                records.append(
                    ShopRecord(
                        "order",
                        str(order.get("id")),
                        order,
                        "shopify_order",
                        _timestamp(order.get("createdAt")),
                    )
                )
            page = orders.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return records
            after = page.get("endCursor")
        raise ShopAdapterError("shopify records: too many orders to list in one request")

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> ErasureOutcome:
        """Shopify's own erasure: it redacts the customer's personal data on its schedule and keeps
        the redacted orders for the merchant's accounts, so the outcome is an anonymisation."""
        gid = customer_gid(subject)
        data = await self._query(ERASE_MUTATION, {"customerId": gid}, "shopify erase")
        payload = data.get("customerRequestDataErasure")
        user_errors(payload, "shopify erase")
        kept = [
            (f"order:{gid}", reason)
            for category, reason in sorted(keep_for_legal_hold.items())
            if category.startswith("user.financial")
        ]
        return ErasureOutcome(anonymised=[f"customer:{gid}"], kept=kept)

    async def rectify(self, subject: str, changes: dict[str, Any]) -> list[str]:
        unknown = sorted(set(changes) - RECTIFIABLE)
        if unknown:
            raise ShopAdapterError(f"shopify rectify: fields not supported: {', '.join(unknown)}")
        if not changes:
            return []
        data = await self._query(
            UPDATE_MUTATION, {"input": {"id": customer_gid(subject), **changes}}, "shopify rectify"
        )
        user_errors(data.get("customerUpdate"), "shopify rectify")
        return sorted(changes)

    async def expired(self, category: str, cutoff: dt.datetime) -> list[RetentionItem]:
        if not any(category == c or category.startswith(c + ".") for c in ORDER_CATEGORIES):
            return []
        stamp = cutoff.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        items: list[RetentionItem] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            data = await self._query(
                EXPIRED_QUERY, {"query": f"created_at:<'{stamp}'", "after": after}, "shopify expired"
            )
            orders = data.get("orders") or {}
            for order in orders.get("nodes") or []:
                created = _timestamp(order.get("createdAt"))
                if created is not None and created < cutoff:
                    items.append(RetentionItem("order", str(order["id"]), category, created))
            page = orders.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return items
            after = page.get("endCursor")
        return items  # the rest is picked up by the next sweep

    async def apply_retention(self, items: list[RetentionItem], action: Literal["delete", "anonymise"]) -> int:
        if action == "anonymise":
            raise ShopAdapterError(
                "shopify retention: orders cannot be anonymised through the Admin API; "
                'use action = "delete" or customer erasure'
            )
        done = 0
        for item in items:
            if item.kind != "order":
                continue
            data = await self._query(DELETE_ORDER_MUTATION, {"orderId": item.id}, "shopify retention delete")
            user_errors(data.get("orderDelete"), "shopify retention delete")
            done += 1
        return done
