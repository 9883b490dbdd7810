"""Platform adapters against the platforms' documented request and response shapes (pytest-httpx:
every request is matched exactly — method, URL, auth header and body)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from privacy_middleware.integrations.saleor.adapter import (
    CUSTOMER_DELETE,
    ORDER_IDS_QUERY,
    ORDER_QUERY,
    ORDER_UPDATE,
    SaleorAdapter,
)
from privacy_middleware.integrations.saleor.adapter import (
    RECORDS_QUERY as SALEOR_RECORDS,
)
from privacy_middleware.integrations.shopify.adapter import (
    DELETE_ORDER_MUTATION,
    ERASE_MUTATION,
    EXPIRED_QUERY,
    UPDATE_MUTATION,
    ShopifyAdapter,
    customer_gid,
)
from privacy_middleware.integrations.shopify.adapter import (
    RECORDS_QUERY as SHOPIFY_RECORDS,
)
from privacy_middleware.integrations.woocommerce.adapter import WooCommerceAdapter, anonymised_address
from privacy_middleware.rights.adapter import RetentionItem, ShopAdapter, ShopAdapterError

pytestmark = pytest.mark.anyio

SHOPIFY_URL = "https://tea-shop.myshopify.com/admin/api/2025-10/graphql.json"
SHOPIFY_HEADERS = {"x-shopify-access-token": "shpat_test", "content-type": "application/json"}
WOO = "https://tea.example/wp-json/wc/v3"
WOO_AUTH = {"authorization": "Basic Y2tfa2V5OmNzX3NlY3JldA=="}  # ck_key:cs_secret
SALEOR_URL = "https://saleor.example/graphql/"
SALEOR_HEADERS = {"authorization": "Bearer saleor-app-token"}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def gql(query: str, variables: dict[str, Any]) -> dict[str, Any]:
    return {"query": query, "variables": variables}


# --- Shopify (GraphQL Admin API 2025-10) ----------------------------------------------------------

ADDRESS = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "company": None,
    "address1": "1 Tea Lane",
    "address2": "",
    "city": "Leeds",
    "province": "England",
    "provinceCode": "ENG",
    "zip": "LS1 1AA",
    "country": "United Kingdom",
    "countryCodeV2": "GB",
    "phone": "+441134960000",
}


def shopify_customer_page(orders: list[dict[str, Any]], has_next: bool, cursor: str | None) -> dict[str, Any]:
    return {
        "data": {
            "customer": {
                "id": "gid://shopify/Customer/191167",
                "firstName": "Ada",
                "lastName": "Lovelace",
                "email": "ada@example.com",
                "phone": "+441134960000",
                "note": None,
                "createdAt": "2024-03-01T10:00:00Z",
                "updatedAt": "2025-01-01T10:00:00Z",
                "addresses": [ADDRESS],
                "orders": {"nodes": orders, "pageInfo": {"hasNextPage": has_next, "endCursor": cursor}},
            }
        },
        "extensions": {"cost": {"requestedQueryCost": 12}},
    }


def shopify_order(n: int) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/Order/{n}",
        "name": f"#{1000 + n}",
        "createdAt": "2024-05-01T09:30:00Z",
        "email": "ada@example.com",
        "phone": None,
        "note": "ring twice",
        "shippingAddress": ADDRESS,
        "billingAddress": ADDRESS,
    }


async def test_shopify_records_pages_through_orders(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    gid = "gid://shopify/Customer/191167"
    httpx_mock.add_response(
        method="POST",
        url=SHOPIFY_URL,
        match_headers=SHOPIFY_HEADERS,
        match_json=gql(SHOPIFY_RECORDS, {"id": gid, "after": None}),
        json=shopify_customer_page([shopify_order(1)], True, "c1"),
    )
    httpx_mock.add_response(
        method="POST",
        url=SHOPIFY_URL,
        match_headers=SHOPIFY_HEADERS,
        match_json=gql(SHOPIFY_RECORDS, {"id": gid, "after": "c1"}),
        json=shopify_customer_page([shopify_order(2)], False, None),
    )
    adapter = ShopifyAdapter(shop="tea-shop.myshopify.com", access_token="shpat_test", http=http)
    assert isinstance(adapter, ShopAdapter)
    records = await adapter.records("191167")
    assert [(r.kind, r.id, r.shape) for r in records] == [
        ("customer", gid, "shopify_customer"),
        ("order", "gid://shopify/Order/1", "shopify_order"),
        ("order", "gid://shopify/Order/2", "shopify_order"),
    ]
    assert records[0].created_at == dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC)
    assert "orders" not in records[0].data
    assert records[1].data["shippingAddress"]["address1"] == "1 Tea Lane"


async def test_shopify_unknown_customer_has_no_records(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    httpx_mock.add_response(url=SHOPIFY_URL, json={"data": {"customer": None}})
    adapter = ShopifyAdapter(shop="tea-shop.myshopify.com", access_token="shpat_test", http=http)
    assert await adapter.records("gid://shopify/Customer/5") == []


async def test_shopify_erase_requests_shopify_erasure(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    gid = "gid://shopify/Customer/191167"
    httpx_mock.add_response(
        method="POST",
        url=SHOPIFY_URL,
        match_headers=SHOPIFY_HEADERS,
        match_json=gql(ERASE_MUTATION, {"customerId": gid}),
        json={"data": {"customerRequestDataErasure": {"customerId": gid, "userErrors": []}}},
    )
    adapter = ShopifyAdapter(shop="tea-shop.myshopify.com", access_token="shpat_test", http=http)
    outcome = await adapter.erase("191167", keep_for_legal_hold={"user.financial.card.last4": "tax law"})
    assert outcome.anonymised == [f"customer:{gid}"]
    assert outcome.kept == [(f"order:{gid}", "tax law")]


async def test_shopify_failures_are_adapter_errors_without_personal_data(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient
) -> None:
    adapter = ShopifyAdapter(shop="tea-shop.myshopify.com", access_token="shpat_test", http=http)
    httpx_mock.add_response(
        url=SHOPIFY_URL,
        json={
            "data": {
                "customerRequestDataErasure": {
                    "customerId": None,
                    "userErrors": [
                        {
                            "field": ["customerId"],
                            "message": "Customer ada@example.com not found",
                            "code": "DOES_NOT_EXIST",
                        }
                    ],
                }
            }
        },
    )
    with pytest.raises(ShopAdapterError) as refused:
        await adapter.erase("191167", keep_for_legal_hold={})
    assert "customerId" in str(refused.value) and "ada@" not in str(refused.value)
    assert not refused.value.retryable
    httpx_mock.add_response(
        url=SHOPIFY_URL, json={"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
    )
    with pytest.raises(ShopAdapterError) as throttled:
        await adapter.records("191167")
    assert throttled.value.retryable
    httpx_mock.add_response(url=SHOPIFY_URL, status_code=503)
    with pytest.raises(ShopAdapterError) as unavailable:
        await adapter.records("191167")
    assert unavailable.value.retryable
    httpx_mock.add_response(url=SHOPIFY_URL, status_code=401)
    with pytest.raises(ShopAdapterError) as denied:
        await adapter.records("191167")
    assert not denied.value.retryable
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=SHOPIFY_URL)
    with pytest.raises(ShopAdapterError) as slow:
        await adapter.records("191167")
    assert slow.value.retryable
    with pytest.raises(ShopAdapterError):
        await adapter.records("ada@example.com")  # not an id: refused before any request


async def test_shopify_rectify_and_retention(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    adapter = ShopifyAdapter(shop="tea-shop.myshopify.com", access_token="shpat_test", http=http)
    gid = customer_gid("191167")
    httpx_mock.add_response(
        method="POST",
        url=SHOPIFY_URL,
        match_json=gql(UPDATE_MUTATION, {"input": {"id": gid, "lastName": "King"}}),
        json={"data": {"customerUpdate": {"customer": {"id": gid}, "userErrors": []}}},
    )
    assert await adapter.rectify("191167", {"lastName": "King"}) == ["lastName"]
    with pytest.raises(ShopAdapterError):
        await adapter.rectify("191167", {"password": "x"})
    cutoff = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    httpx_mock.add_response(
        method="POST",
        url=SHOPIFY_URL,
        match_json=gql(EXPIRED_QUERY, {"query": "created_at:<'2024-06-01T00:00:00Z'", "after": None}),
        json={
            "data": {
                "orders": {
                    "nodes": [{"id": "gid://shopify/Order/1", "createdAt": "2024-05-01T09:30:00Z"}],
                    "pageInfo": {"hasNextPage": False, "endCursor": None},
                }
            }
        },
    )
    items = await adapter.expired("user.contact.address.delivery.street", cutoff)
    assert items == [
        RetentionItem(
            "order",
            "gid://shopify/Order/1",
            "user.contact.address.delivery.street",
            dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC),
        )
    ]
    assert await adapter.expired("user.behavior.browsing", cutoff) == []  # not held in orders
    httpx_mock.add_response(
        method="POST",
        url=SHOPIFY_URL,
        match_json=gql(DELETE_ORDER_MUTATION, {"orderId": "gid://shopify/Order/1"}),
        json={"data": {"orderDelete": {"deletedId": "gid://shopify/Order/1", "userErrors": []}}},
    )
    assert await adapter.apply_retention(items, "delete") == 1
    with pytest.raises(ShopAdapterError):
        await adapter.apply_retention(items, "anonymise")


def test_shopify_adapter_refuses_a_non_shopify_domain() -> None:
    with pytest.raises(ValueError):
        ShopifyAdapter(shop="evil.example.com", access_token="x", http=httpx.AsyncClient())


# --- WooCommerce (REST API v3) ------------------------------------------------------------------

WOO_CUSTOMER = {
    "id": 25,
    "date_created_gmt": "2024-02-01T08:00:00",
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "role": "customer",
    "username": "ada",
    "billing": {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "",
        "address_1": "2 Bill Road",
        "address_2": "",
        "city": "York",
        "state": "",
        "postcode": "YO1 1AA",
        "country": "GB",
        "email": "ada@example.com",
        "phone": "+44 113 496 0000",
    },
    "shipping": {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "",
        "address_1": "1 Tea Lane",
        "address_2": "",
        "city": "Leeds",
        "state": "",
        "postcode": "LS1 1AA",
        "country": "GB",
        "phone": "+44 113 496 0000",
    },
}


def woo_order(n: int) -> dict[str, Any]:
    return {
        "id": n,
        "customer_id": 25,
        "status": "completed",
        "date_created_gmt": "2024-05-01T09:30:00",
        "billing": WOO_CUSTOMER["billing"],
        "shipping": WOO_CUSTOMER["shipping"],
        "customer_note": "ring twice",
        "customer_ip_address": "203.0.113.9",
        "total": "17.00",
    }


def woo_adapter(http: httpx.AsyncClient) -> WooCommerceAdapter:
    return WooCommerceAdapter(
        base_url="https://tea.example", consumer_key="ck_key", consumer_secret="cs_secret", http=http
    )


async def test_woocommerce_records_use_basic_auth_and_paginate(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    httpx_mock.add_response(method="GET", url=f"{WOO}/customers/25", match_headers=WOO_AUTH, json=WOO_CUSTOMER)
    httpx_mock.add_response(
        method="GET",
        url=f"{WOO}/orders?customer=25&status=any&per_page=100&page=1",
        match_headers=WOO_AUTH,
        json=[woo_order(1)],
        headers={"X-WP-TotalPages": "2"},
    )
    httpx_mock.add_response(
        method="GET",
        url=f"{WOO}/orders?customer=25&status=any&per_page=100&page=2",
        match_headers=WOO_AUTH,
        json=[woo_order(2)],
        headers={"X-WP-TotalPages": "2"},
    )
    records = await woo_adapter(http).records("25")
    assert [(r.kind, r.id) for r in records] == [("customer", "25"), ("order", "1"), ("order", "2")]
    assert records[0].created_at == dt.datetime(2024, 2, 1, 8, tzinfo=dt.UTC)
    for request in httpx_mock.get_requests():
        assert "ck_key" not in str(request.url) and "cs_secret" not in str(request.url)


async def test_woocommerce_unknown_customer_and_insecure_url(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    httpx_mock.add_response(
        url=f"{WOO}/customers/99",
        status_code=404,
        json={"code": "woocommerce_rest_invalid_id", "message": "Invalid resource ID."},
    )
    assert await woo_adapter(http).records("99") == []
    with pytest.raises(ShopAdapterError):
        await woo_adapter(http).records("../orders")
    with pytest.raises(ValueError):
        WooCommerceAdapter(base_url="http://tea.example", consumer_key="k", consumer_secret="s", http=http)
    assert (
        WooCommerceAdapter(
            base_url="http://127.0.0.1:8080",
            consumer_key="k",
            consumer_secret="s",
            http=http,
            allow_http=True,
        ).base
        == "http://127.0.0.1:8080/wp-json/wc/v3"
    )


async def test_woocommerce_erasure_anonymises_held_orders_then_deletes_the_customer(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient
) -> None:
    httpx_mock.add_response(
        method="GET",
        url=f"{WOO}/orders?customer=25&status=any&per_page=100&page=1",
        json=[woo_order(7)],
        headers={"X-WP-TotalPages": "1"},
    )
    expected_update = {
        "billing": {
            "first_name": "",
            "last_name": "",
            "company": "",
            "address_1": "",
            "address_2": "",
            "city": "",
            "state": "",
            "postcode": "",
            "country": "",
            "email": "deleted@site.invalid",
            "phone": "+00 000 000 0000",
        },
        "shipping": {
            "first_name": "",
            "last_name": "",
            "company": "",
            "address_1": "",
            "address_2": "",
            "city": "",
            "state": "",
            "postcode": "",
            "country": "",
            "phone": "+00 000 000 0000",
        },
        "customer_note": "",
        "customer_id": 0,
    }
    httpx_mock.add_response(
        method="PUT",
        url=f"{WOO}/orders/7",
        match_headers=WOO_AUTH,
        match_json=expected_update,
        json=woo_order(7),
    )
    httpx_mock.add_response(
        method="DELETE",
        url=f"{WOO}/customers/25?force=true&reassign=0",
        match_headers=WOO_AUTH,
        json=WOO_CUSTOMER,
    )
    outcome = await woo_adapter(http).erase(
        "25", keep_for_legal_hold={"user.contact.address.billing": "Invoices are kept 10 years"}
    )
    assert outcome.anonymised == ["order:7"]
    assert outcome.kept == [("order:7", "Invoices are kept 10 years")]
    assert outcome.deleted == ["customer:25"]


async def test_woocommerce_erasure_without_hold_deletes_orders(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    httpx_mock.add_response(
        method="GET",
        url=f"{WOO}/orders?customer=25&status=any&per_page=100&page=1",
        json=[woo_order(7)],
        headers={"X-WP-TotalPages": "1"},
    )
    httpx_mock.add_response(method="DELETE", url=f"{WOO}/orders/7?force=true", json=woo_order(7))
    httpx_mock.add_response(
        method="DELETE",
        url=f"{WOO}/customers/25?force=true&reassign=0",
        status_code=404,
        json={"code": "woocommerce_rest_invalid_id"},
    )
    outcome = await woo_adapter(http).erase("25", keep_for_legal_hold={})
    assert outcome.deleted == ["order:7"] and outcome.anonymised == []


async def test_woocommerce_rectify_expired_and_retention(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    adapter = woo_adapter(http)
    httpx_mock.add_response(
        method="PUT", url=f"{WOO}/customers/25", match_json={"last_name": "King"}, json=WOO_CUSTOMER
    )
    assert await adapter.rectify("25", {"last_name": "King"}) == ["last_name"]
    with pytest.raises(ShopAdapterError):
        await adapter.rectify("25", {"role": "administrator"})
    cutoff = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    httpx_mock.add_response(
        method="GET",
        url=f"{WOO}/orders?before=2024-06-01T00%3A00%3A00&dates_are_gmt=true&status=any&per_page=100&page=1",
        json=[woo_order(7), {**woo_order(8), "date_created_gmt": "2024-07-01T00:00:00"}],
        headers={"X-WP-TotalPages": "1"},
    )
    items = await adapter.expired("user.device.ip_address", cutoff)
    assert [i.id for i in items] == ["7"]
    httpx_mock.add_response(method="DELETE", url=f"{WOO}/orders/7?force=true", json=woo_order(7))
    assert await adapter.apply_retention(items, "delete") == 1


def test_woocommerce_anonymised_address_mirrors_wordpress() -> None:
    assert anonymised_address({"first_name": "Ada", "phone": "+44 (113) 496-0000", "email": "a@b.c", "x": 1}) == {
        "first_name": "",
        "phone": "+00 (000) 000-0000",
        "email": "deleted@site.invalid",
    }
    assert anonymised_address(None) == {}


# --- Saleor (GraphQL) ---------------------------------------------------------------------------

SALEOR_ADDRESS = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "companyName": "",
    "streetAddress1": "1 Tea Lane",
    "streetAddress2": "",
    "city": "LEEDS",
    "cityArea": "",
    "postalCode": "LS1 1AA",
    "country": {"code": "GB"},
    "countryArea": "",
    "phone": "+441134960000",
}


async def test_saleor_records(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    httpx_mock.add_response(
        method="POST",
        url=SALEOR_URL,
        match_headers=SALEOR_HEADERS,
        match_json=gql(SALEOR_RECORDS, {"id": "VXNlcjoyMg==", "after": None}),
        json={
            "data": {
                "user": {
                    "id": "VXNlcjoyMg==",
                    "email": "ada@example.com",
                    "firstName": "Ada",
                    "lastName": "Lovelace",
                    "note": None,
                    "dateJoined": "2024-02-01T08:00:00+00:00",
                    "languageCode": "EN",
                    "addresses": [{"id": "QWRkcmVzczox", **SALEOR_ADDRESS}],
                    "orders": {
                        "edges": [
                            {
                                "node": {
                                    "id": "T3JkZXI6MQ==",
                                    "number": "1",
                                    "created": "2024-05-01T09:30:00+00:00",
                                    "status": "FULFILLED",
                                    "userEmail": "ada@example.com",
                                    "customerNote": "",
                                    "shippingAddress": SALEOR_ADDRESS,
                                    "billingAddress": SALEOR_ADDRESS,
                                }
                            }
                        ],
                        "pageInfo": {"hasNextPage": False, "endCursor": None},
                    },
                }
            }
        },
    )
    adapter = SaleorAdapter(api_url=SALEOR_URL, app_token="saleor-app-token", http=http)
    assert isinstance(adapter, ShopAdapter)
    records = await adapter.records("VXNlcjoyMg==")
    assert [(r.kind, r.id, r.shape) for r in records] == [
        ("customer", "VXNlcjoyMg==", "saleor_customer"),
        ("order", "T3JkZXI6MQ==", "saleor_order"),
    ]


async def test_saleor_erase_anonymises_orders_and_deletes_the_customer(
    httpx_mock: HTTPXMock, http: httpx.AsyncClient
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=SALEOR_URL,
        match_headers=SALEOR_HEADERS,
        match_json=gql(ORDER_IDS_QUERY, {"id": "VXNlcjoyMg==", "after": None}),
        json={
            "data": {
                "user": {
                    "orders": {
                        "edges": [
                            {
                                "node": {
                                    "id": "T3JkZXI6MQ==",
                                    "shippingAddress": {"country": {"code": "GB"}},
                                    "billingAddress": None,
                                }
                            }
                        ],
                        "pageInfo": {"hasNextPage": False, "endCursor": None},
                    }
                }
            }
        },
    )
    blank = {
        "firstName": "",
        "lastName": "",
        "companyName": "",
        "streetAddress1": "",
        "streetAddress2": "",
        "city": "",
        "cityArea": "",
        "postalCode": "",
        "phone": "",
        "country": "GB",
    }
    httpx_mock.add_response(
        method="POST",
        url=SALEOR_URL,
        match_json=gql(
            ORDER_UPDATE,
            {"id": "T3JkZXI6MQ==", "input": {"userEmail": "deleted@site.invalid", "shippingAddress": blank}},
        ),
        json={"data": {"orderUpdate": {"order": {"id": "T3JkZXI6MQ=="}, "errors": []}}},
    )
    httpx_mock.add_response(
        method="POST",
        url=SALEOR_URL,
        match_json=gql(CUSTOMER_DELETE, {"id": "VXNlcjoyMg=="}),
        json={"data": {"customerDelete": {"errors": []}}},
    )
    adapter = SaleorAdapter(api_url=SALEOR_URL, app_token="saleor-app-token", http=http)
    outcome = await adapter.erase("VXNlcjoyMg==", keep_for_legal_hold={})
    assert outcome.deleted == ["customer:VXNlcjoyMg=="]
    assert outcome.anonymised == ["order:T3JkZXI6MQ=="]


async def test_saleor_errors_and_retention(httpx_mock: HTTPXMock, http: httpx.AsyncClient) -> None:
    adapter = SaleorAdapter(api_url=SALEOR_URL, app_token="saleor-app-token", http=http)
    httpx_mock.add_response(
        url=SALEOR_URL,
        json={
            "data": {
                "customerDelete": {"errors": [{"field": "id", "code": "NOT_FOUND", "message": "Couldn't resolve"}]},
                "user": None,
            }
        },
    )
    assert (await adapter.erase("VXNlcjo5OQ==", keep_for_legal_hold={})).deleted == []
    item = RetentionItem("order", "T3JkZXI6MQ==", "user.contact.email", dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    with pytest.raises(ShopAdapterError):
        await adapter.apply_retention([item], "delete")
    httpx_mock.add_response(
        method="POST",
        url=SALEOR_URL,
        match_json=gql(ORDER_QUERY, {"id": "T3JkZXI6MQ=="}),
        json={"data": {"order": {"id": "T3JkZXI6MQ==", "shippingAddress": None, "billingAddress": None}}},
    )
    httpx_mock.add_response(
        method="POST",
        url=SALEOR_URL,
        match_json=gql(ORDER_UPDATE, {"id": "T3JkZXI6MQ==", "input": {"userEmail": "deleted@site.invalid"}}),
        json={
            "data": {
                "orderUpdate": {
                    "order": None,
                    "errors": [{"field": "userEmail", "code": "INVALID", "message": "x"}],
                }
            }
        },
    )
    with pytest.raises(ShopAdapterError) as refused:
        await adapter.apply_retention([item], "anonymise")
    assert "userEmail" in str(refused.value)
    sent = [orjson.loads(r.content) for r in httpx_mock.get_requests()]
    assert all(r["query"].lstrip().startswith(("query", "mutation")) for r in sent)
