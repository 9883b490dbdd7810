"""WooCommerce adapter over the REST API v3 (`/wp-json/wc/v3/customers`, `/orders`).

Authenticates with the REST API consumer key and secret as HTTP Basic over HTTPS, never in the
query string (WooCommerce accepts both; query strings end up in access logs). Plain http is
refused unless `allow_http=True` (a shop on the same host or a private network).

Anonymisation mirrors WooCommerce's own privacy eraser: personal address fields become empty,
phone digits become zeros, and the order itself (amounts, items, tax) is kept for the accounts.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from ...rights.adapter import ErasureOutcome, RetentionItem, ShopAdapterError, ShopRecord
from ..common import ShopApiError, call, response_json

API = "/wp-json/wc/v3"
PER_PAGE = 100
MAX_PAGES = 100
ADDRESS_KEYS = (
    "first_name",
    "last_name",
    "company",
    "address_1",
    "address_2",
    "city",
    "state",
    "postcode",
    "country",
    "email",
    "phone",
)
RECTIFIABLE = {"first_name", "last_name", "email", "billing", "shipping"}
ORDER_CATEGORIES = ("user.name", "user.contact", "user.content.order_note", "user.device.ip_address")


def anonymised_address(address: dict[str, Any] | None) -> dict[str, str]:
    """WordPress's anonymisation: text emptied, e-mail replaced, phone digits zeroed."""
    result: dict[str, str] = {}
    for key, value in (address or {}).items():
        if key not in ADDRESS_KEYS:
            continue
        if key == "email":
            result[key] = "deleted@site.invalid" if value else ""
        elif key == "phone" and isinstance(value, str):
            result[key] = re.sub(r"\d", "0", value)
        else:
            result[key] = ""
    return result


def _customer_id(subject: str) -> int:
    subject = subject.strip()
    if not subject.isdigit() or len(subject) > 19 or int(subject) <= 0:
        raise ShopAdapterError("the subject is not a WooCommerce customer id")
    return int(subject)


def _created(record: dict[str, Any]) -> dt.datetime | None:
    value = record.get("date_created_gmt")
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


class WooCommerceAdapter:
    """`ShopAdapter` for one WooCommerce shop. `http` is shared and owned by the caller."""

    name = "woocommerce"

    def __init__(
        self,
        *,
        base_url: str,
        consumer_key: str | SecretStr,
        consumer_secret: str | SecretStr,
        http: httpx.AsyncClient,
        allow_http: bool = False,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme != "https" and not (allow_http and url.scheme == "http"):
            raise ValueError("the WooCommerce URL must be https (credentials travel as HTTP Basic)")
        self.base = str(url).rstrip("/") + API
        key = consumer_key.get_secret_value() if isinstance(consumer_key, SecretStr) else consumer_key
        secret = consumer_secret.get_secret_value() if isinstance(consumer_secret, SecretStr) else consumer_secret
        credentials = base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")
        self._headers = {"accept": "application/json", "authorization": f"Basic {credentials}"}
        self.http = http

    async def _request(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        request = self.http.build_request(method, self.base + path, params=params, json=json, headers=self._headers)
        return await call(self.http, request, operation)

    async def _pages(self, path: str, params: dict[str, Any], operation: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            response = await self._request(
                "GET", path, operation, params={**params, "per_page": PER_PAGE, "page": page}
            )
            batch = response_json(response, operation)
            if not isinstance(batch, list):
                raise ShopAdapterError(f"{operation}: expected a list")
            items.extend(b for b in batch if isinstance(b, dict))
            total_pages = response.headers.get("x-wp-totalpages", "1")
            if not batch or page >= (int(total_pages) if total_pages.isdigit() else 1):
                return items
        return items

    async def _orders_of(self, customer_id: int, operation: str) -> list[dict[str, Any]]:
        return await self._pages("/orders", {"customer": customer_id, "status": "any"}, operation)

    async def records(self, subject: str) -> list[ShopRecord]:
        customer_id = _customer_id(subject)
        try:
            response = await self._request("GET", f"/customers/{customer_id}", "woocommerce records")
        except ShopApiError as exc:
            if exc.status == 404:
                return []
            raise
        customer = response_json(response, "woocommerce records")
        records = [ShopRecord("customer", str(customer_id), customer, "woocommerce_customer", _created(customer))]
        for order in await self._orders_of(customer_id, "woocommerce records"):
            records.append(ShopRecord("order", str(order.get("id")), order, "woocommerce_order", _created(order)))
        return records

    async def _anonymise_order(self, order: dict[str, Any], operation: str) -> None:
        body = {
            "billing": anonymised_address(order.get("billing")),
            "shipping": anonymised_address(order.get("shipping")),
            "customer_note": "",
            "customer_id": 0,
        }
        await self._request("PUT", f"/orders/{int(order['id'])}", operation, json=body)

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> ErasureOutcome:
        """Orders are anonymised when a legal hold covers order data, deleted otherwise; then the
        customer account is deleted (`force=true`: WooCommerce customers cannot be trashed)."""
        customer_id = _customer_id(subject)
        deleted: list[str] = []
        anonymised: list[str] = []
        kept: list[tuple[str, str]] = []
        hold = next(
            (
                reason
                for category, reason in sorted(keep_for_legal_hold.items())
                if category.startswith(("user.financial", "user.contact.address.billing"))
            ),
            None,
        )
        for order in await self._orders_of(customer_id, "woocommerce erase"):
            ref = f"order:{order.get('id')}"
            if hold is not None:
                await self._anonymise_order(order, "woocommerce erase")
                anonymised.append(ref)
                kept.append((ref, hold))
            else:
                await self._request(
                    "DELETE", f"/orders/{int(order['id'])}", "woocommerce erase", params={"force": "true"}
                )
                deleted.append(ref)
        try:
            await self._request(
                "DELETE",
                f"/customers/{customer_id}",
                "woocommerce erase",
                params={"force": "true", "reassign": 0},
            )
            deleted.append(f"customer:{customer_id}")
        except ShopApiError as exc:
            if exc.status != 404:  # already gone: nothing left to delete
                raise
        return ErasureOutcome(deleted=deleted, anonymised=anonymised, kept=kept)

    async def rectify(self, subject: str, changes: dict[str, Any]) -> list[str]:
        unknown = sorted(set(changes) - RECTIFIABLE)
        if unknown:
            raise ShopAdapterError(f"woocommerce rectify: fields not supported: {', '.join(unknown)}")
        if not changes:
            return []
        await self._request("PUT", f"/customers/{_customer_id(subject)}", "woocommerce rectify", json=changes)
        return sorted(changes)

    async def expired(self, category: str, cutoff: dt.datetime) -> list[RetentionItem]:
        if not any(category == c or category.startswith(c + ".") for c in ORDER_CATEGORIES):
            return []
        before = cutoff.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        orders = await self._pages(
            "/orders", {"before": before, "dates_are_gmt": "true", "status": "any"}, "woocommerce expired"
        )
        items = []
        for order in orders:
            created = _created(order)
            if created is not None and created < cutoff:
                items.append(RetentionItem("order", str(order.get("id")), category, created))
        return items

    async def apply_retention(self, items: list[RetentionItem], action: Literal["delete", "anonymise"]) -> int:
        done = 0
        for item in items:
            if item.kind != "order" or not item.id.isdigit():
                continue
            if action == "delete":
                await self._request("DELETE", f"/orders/{item.id}", "woocommerce retention", params={"force": "true"})
            else:
                response = await self._request("GET", f"/orders/{item.id}", "woocommerce retention")
                await self._anonymise_order(response_json(response, "woocommerce retention"), "woocommerce retention")
            done += 1
        return done
