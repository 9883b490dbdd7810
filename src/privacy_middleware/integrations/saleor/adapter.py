"""Saleor adapter over its GraphQL API (`POST <api_url>`, an App token as `Authorization: Bearer`).

Permissions the app needs: MANAGE_USERS (customers) and MANAGE_ORDERS. Saleor never deletes a
placed order, so erasure deletes the customer and anonymises their orders (`orderUpdate`), and a
retention rule on orders must use `action = "anonymise"`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from ...rights.adapter import ErasureOutcome, RetentionItem, ShopAdapterError, ShopRecord
from ..common import graphql, user_errors

PAGE_SIZE = 50
MAX_PAGES = 200
ADDRESS = (
    "firstName lastName companyName streetAddress1 streetAddress2 city cityArea postalCode "
    "country { code } countryArea phone"
)
ORDER_CATEGORIES = ("user.name", "user.contact", "user.content.order_note")
RECTIFIABLE = {"firstName", "lastName", "email", "note"}
ANONYMISED_EMAIL = "deleted@site.invalid"

RECORDS_QUERY = f"""
query PrivacySubjectRecords($id: ID!, $after: String) {{
  user(id: $id) {{
    id email firstName lastName note dateJoined languageCode
    addresses {{ id {ADDRESS} }}
    orders(first: {PAGE_SIZE}, after: $after) {{
      edges {{ node {{ id number created status userEmail customerNote
        shippingAddress {{ {ADDRESS} }} billingAddress {{ {ADDRESS} }} }} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}
"""
ORDER_IDS_QUERY = f"""
query PrivacySubjectOrders($id: ID!, $after: String) {{
  user(id: $id) {{
    orders(first: {PAGE_SIZE}, after: $after) {{
      edges {{ node {{ id
        shippingAddress {{ country {{ code }} }} billingAddress {{ country {{ code }} }} }} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}
"""
ORDER_QUERY = """
query PrivacyOrder($id: ID!) {
  order(id: $id) { id shippingAddress { country { code } } billingAddress { country { code } } }
}
"""
ORDER_UPDATE = """
mutation PrivacyAnonymiseOrder($id: ID!, $input: OrderUpdateInput!) {
  orderUpdate(id: $id, input: $input) { order { id } errors { field code message } }
}
"""
CUSTOMER_DELETE = """
mutation PrivacyDeleteCustomer($id: ID!) {
  customerDelete(id: $id) { errors { field code message } }
}
"""
CUSTOMER_UPDATE = """
mutation PrivacyRectify($id: ID!, $input: CustomerInput!) {
  customerUpdate(id: $id, input: $input) { user { id } errors { field code message } }
}
"""
EXPIRED_QUERY = f"""
query PrivacyExpiredOrders($before: Date!, $after: String) {{
  orders(first: {PAGE_SIZE}, after: $after, filter: {{ created: {{ lte: $before }} }}) {{
    edges {{ node {{ id created }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""


def _timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def anonymised_address(address: Any) -> dict[str, Any] | None:
    """An address with every personal field emptied; the country stays (tax and reporting)."""
    if not isinstance(address, dict):
        return None
    country = (address.get("country") or {}).get("code")
    blank: dict[str, Any] = {
        k: ""
        for k in (
            "firstName",
            "lastName",
            "companyName",
            "streetAddress1",
            "streetAddress2",
            "city",
            "cityArea",
            "postalCode",
            "phone",
        )
    }
    if country:
        blank["country"] = country
    return blank


class SaleorAdapter:
    """`ShopAdapter` for one Saleor instance. `http` is shared and owned by the caller."""

    name = "saleor"

    def __init__(self, *, api_url: str, app_token: str | SecretStr, http: httpx.AsyncClient) -> None:
        url = httpx.URL(api_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("api_url must be the Saleor GraphQL URL, e.g. https://shop.example/graphql/")
        self.api_url = api_url
        token = app_token.get_secret_value() if isinstance(app_token, SecretStr) else app_token
        self._headers = {"authorization": f"Bearer {token}"}
        self.http = http

    async def _query(self, query: str, variables: dict[str, Any], operation: str) -> dict[str, Any]:
        return await graphql(self.http, self.api_url, self._headers, query, variables, operation)

    async def _user_orders(
        self, query: str, subject: str, operation: str
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        user: dict[str, Any] | None = None
        orders: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            data = await self._query(query, {"id": subject, "after": after}, operation)
            found = data.get("user")
            if not isinstance(found, dict):
                return user, orders
            page = found.pop("orders", None) or {}
            user = user or found
            orders.extend(e["node"] for e in page.get("edges") or [] if isinstance(e, dict) and e.get("node"))
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return user, orders
            after = info.get("endCursor")
        raise ShopAdapterError(f"{operation}: too many orders to list in one request")

    async def records(self, subject: str) -> list[ShopRecord]:
        user, orders = await self._user_orders(RECORDS_QUERY, subject, "saleor records")
        if user is None:
            return []
        records = [
            ShopRecord("customer", str(user.get("id")), user, "saleor_customer", _timestamp(user.get("dateJoined")))
        ]
        records.extend(
            ShopRecord("order", str(o.get("id")), o, "saleor_order", _timestamp(o.get("created"))) for o in orders
        )
        return records

    async def _anonymise(self, order: dict[str, Any], operation: str) -> None:
        update: dict[str, Any] = {"userEmail": ANONYMISED_EMAIL}
        for key in ("shippingAddress", "billingAddress"):
            blank = anonymised_address(order.get(key))
            if blank is not None:
                update[key] = blank
        data = await self._query(ORDER_UPDATE, {"id": order["id"], "input": update}, operation)
        user_errors(data.get("orderUpdate"), operation, key="errors")

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> ErasureOutcome:
        user, orders = await self._user_orders(ORDER_IDS_QUERY, subject, "saleor erase")
        if user is None:
            return ErasureOutcome()
        anonymised = []
        for order in orders:
            await self._anonymise(order, "saleor erase")
            anonymised.append(f"order:{order['id']}")
        data = await self._query(CUSTOMER_DELETE, {"id": subject}, "saleor erase")
        user_errors(data.get("customerDelete"), "saleor erase", key="errors")
        reason = next(iter(sorted(keep_for_legal_hold.values())), "Saleor keeps placed orders")
        return ErasureOutcome(
            deleted=[f"customer:{subject}"], anonymised=anonymised, kept=[(ref, reason) for ref in anonymised]
        )

    async def rectify(self, subject: str, changes: dict[str, Any]) -> list[str]:
        unknown = sorted(set(changes) - RECTIFIABLE)
        if unknown:
            raise ShopAdapterError(f"saleor rectify: fields not supported: {', '.join(unknown)}")
        if not changes:
            return []
        data = await self._query(CUSTOMER_UPDATE, {"id": subject, "input": changes}, "saleor rectify")
        user_errors(data.get("customerUpdate"), "saleor rectify", key="errors")
        return sorted(changes)

    async def expired(self, category: str, cutoff: dt.datetime) -> list[RetentionItem]:
        if not any(category == c or category.startswith(c + ".") for c in ORDER_CATEGORIES):
            return []
        items: list[RetentionItem] = []
        after: str | None = None
        before = cutoff.astimezone(dt.UTC).date().isoformat()
        for _ in range(MAX_PAGES):
            data = await self._query(EXPIRED_QUERY, {"before": before, "after": after}, "saleor expired")
            page = data.get("orders") or {}
            for edge in page.get("edges") or []:
                node = edge.get("node") or {}
                created = _timestamp(node.get("created"))
                if created is not None and created < cutoff:
                    items.append(RetentionItem("order", str(node["id"]), category, created))
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return items
            after = info.get("endCursor")
        return items

    async def apply_retention(self, items: list[RetentionItem], action: Literal["delete", "anonymise"]) -> int:
        if action == "delete":
            raise ShopAdapterError('saleor retention: placed orders cannot be deleted; use action = "anonymise"')
        done = 0
        for item in items:
            if item.kind != "order":
                continue
            data = await self._query(ORDER_QUERY, {"id": item.id}, "saleor retention")
            order = data.get("order")
            if isinstance(order, dict):
                await self._anonymise(order, "saleor retention")
                done += 1
        return done
