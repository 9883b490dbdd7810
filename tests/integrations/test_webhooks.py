"""Platform webhooks end to end: signature checks on the raw body, durable de-duplication on real
SQLite and PostgreSQL, hand-over to the subject-request queue, and audit of rejections."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock
from starlette.applications import Starlette

from privacy_middleware.api.webhooks import webhook_routes
from privacy_middleware.integrations.saleor.webhooks import SaleorWebhooks, jwks_url_for
from privacy_middleware.integrations.shopify.webhooks import ShopifyWebhooks, shopify_hmac
from privacy_middleware.integrations.woocommerce.webhooks import WooCommerceWebhooks, woocommerce_signature
from privacy_middleware.store import Database
from privacy_middleware.store.webhooks import claim_delivery, prune_deliveries, release_delivery

pytestmark = pytest.mark.anyio

SECRET = "shpss_test_secret"
OLD_SECRET = "shpss_previous_secret"
SHOP = "tea-shop.myshopify.com"
SALEOR_API = "https://saleor.example/graphql/"

DATA_REQUEST = {
    "shop_id": 954889,
    "shop_domain": SHOP,
    "orders_requested": [299938, 280263, 220458],
    "customer": {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"},
    "data_request": {"id": 9999},
}
CUSTOMER_REDACT = {
    "shop_id": 954889,
    "shop_domain": SHOP,
    "customer": {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"},
    "orders_to_redact": [299938, 280263, 220458],
}
SHOP_REDACT = {"shop_id": 954889, "shop_domain": SHOP}


def compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def test_shopify_hmac_matches_independent_vectors() -> None:
    """Vectors computed for Shopify's template payloads (research/ecosystem.md §3.2)."""
    template = dict(DATA_REQUEST, shop_domain="{shop}.myshopify.com")
    assert shopify_hmac(SECRET, compact(template)) == "HN3ubjd04ZH0rYGOBsc2Id/+6QAGI7mo7nlvl21c24w="
    redact = dict(CUSTOMER_REDACT, shop_domain="{shop}.myshopify.com")
    assert shopify_hmac(SECRET, compact(redact)) == "uqKvRXT8h+PDle7XNNRp1vJRqXSBaTQWJPbFzmO91Q4="
    body = b'{"shop_id":954889,"shop_domain":"{shop}.myshopify.com"}'
    assert shopify_hmac(SECRET, body) == "A504NLm6BXxljXFiNrVoExj8Fkw0GwdDJJO7y8di138="
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert shopify_hmac(SECRET, body) == expected


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=512),
    secret=st.text(min_size=1, max_size=40),
    other=st.text(min_size=1, max_size=40),
)
def test_shopify_signature_verifies_only_with_a_configured_secret(body: bytes, secret: str, other: str) -> None:
    receiver = ShopifyWebhooks([secret])
    good = {"x-shopify-hmac-sha256": shopify_hmac(secret, body)}
    assert asyncio.run(receiver.verify(good, body)) is None
    if other != secret:
        forged = {"x-shopify-hmac-sha256": shopify_hmac(other, body)}
        assert asyncio.run(receiver.verify(forged, body)) == "bad_signature"
    assert asyncio.run(receiver.verify(good, body + b" ")) == "bad_signature"
    hex_digest = {"x-shopify-hmac-sha256": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    assert asyncio.run(receiver.verify(hex_digest, body)) == "bad_signature"  # hex is the classic mistake


def test_receivers_refuse_empty_secrets() -> None:
    with pytest.raises(ValueError):
        ShopifyWebhooks([])
    with pytest.raises(ValueError):
        ShopifyWebhooks([""])
    with pytest.raises(ValueError):
        WooCommerceWebhooks([])


# --- the routes, on real databases -------------------------------------------------------------


class Queue:
    """Stands in for the subject-request queue's submit callback; can be told to fail."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, str, str]] = []
        self.fail = False

    async def __call__(self, kind: str, subject: str, source: str, key: str) -> None:
        if self.fail:
            raise ConnectionError("queue down")
        self.submitted.append((kind, subject, source, key))


class Audit:
    def __init__(self) -> None:
        self.rejected: list[tuple[str, str, str | None]] = []

    async def __call__(self, platform: str, reason: str, client_ip: str | None) -> None:
        self.rejected.append((platform, reason, client_ip))


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_for(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}


def saleor_jws(key: rsa.RSAPrivateKey, body: bytes, kid: str = "k1") -> str:
    return jwt.api_jws.encode(
        body, key, algorithm="RS256", headers={"kid": kid, "b64": False}, is_payload_detached=True
    )


@pytest.fixture
async def harness(
    database: Database,
) -> AsyncIterator[tuple[httpx.AsyncClient, Queue, Audit, httpx.AsyncClient]]:
    queue, audit = Queue(), Audit()
    async with httpx.AsyncClient() as http:
        receivers = [
            ShopifyWebhooks([SECRET, OLD_SECRET]),
            WooCommerceWebhooks(["wc-secret"]),
            SaleorWebhooks(api_url=SALEOR_API, http=http),
        ]
        app = Starlette(routes=webhook_routes(database, queue, receivers, on_rejected=audit, max_body_bytes=4096))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://pm.example") as client:
            yield client, queue, audit, http


def shopify_headers(
    body: bytes, topic: str, *, secret: str = SECRET, webhook_id: str = "wh-1", event_id: str | None = None
) -> dict[str, str]:
    headers = {
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": shopify_hmac(secret, body),
        "x-shopify-shop-domain": SHOP,
        "x-shopify-webhook-id": webhook_id,
        "content-type": "application/json",
    }
    if event_id:
        headers["x-shopify-event-id"] = event_id
    return headers


@pytest.mark.parametrize(
    "topic, payload, expected",
    [
        ("customers/data_request", DATA_REQUEST, ("access", "191167")),
        ("customers/redact", CUSTOMER_REDACT, ("erasure", "191167")),
        ("shop/redact", SHOP_REDACT, ("shop_erasure", SHOP)),
    ],
)
async def test_shopify_compliance_webhooks_are_queued(
    harness: Any, topic: str, payload: dict[str, Any], expected: tuple[str, str]
) -> None:
    client, queue, audit, _ = harness
    body = compact(payload)
    response = await client.post("/webhooks/shopify", content=body, headers=shopify_headers(body, topic))
    assert response.status_code == 200
    assert response.json() == {"status": "queued", "requests": 1}
    kind, subject = expected
    assert queue.submitted == [
        (kind, subject, f"shopify:{SHOP}", f"shopify:x-shopify-webhook-id:wh-1:{kind}:{subject}")
    ]
    assert audit.rejected == []


async def test_shopify_old_secret_and_unprefixed_header_are_accepted(harness: Any) -> None:
    client, queue, _, _ = harness
    body = compact(CUSTOMER_REDACT)
    headers = shopify_headers(body, "customers/redact", secret=OLD_SECRET)
    headers["shopify-hmac-sha256"] = headers.pop("x-shopify-hmac-sha256")
    response = await client.post("/webhooks/shopify", content=body, headers=headers)
    assert response.status_code == 200
    assert len(queue.submitted) == 1


@pytest.mark.parametrize(
    "tamper, reason",
    [
        ("missing", "missing_signature"),
        ("wrong_secret", "bad_signature"),
        ("reserialised", "bad_signature"),
        ("garbage", "bad_signature"),
    ],
)
async def test_shopify_bad_signature_is_401_audited_and_not_queued(harness: Any, tamper: str, reason: str) -> None:
    client, queue, audit, _ = harness
    body = compact(DATA_REQUEST)
    headers = shopify_headers(body, "customers/data_request")
    if tamper == "missing":
        del headers["x-shopify-hmac-sha256"]
    elif tamper == "wrong_secret":
        headers["x-shopify-hmac-sha256"] = shopify_hmac("attacker", body)
    elif tamper == "reserialised":
        body = json.dumps(DATA_REQUEST).encode()  # same JSON, different bytes
    else:
        headers["x-shopify-hmac-sha256"] = "not base64!!"
    response = await client.post("/webhooks/shopify", content=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "webhook_signature_invalid"
    assert "john@example.com" not in response.text
    assert queue.submitted == []
    assert audit.rejected == [("shopify", reason, "127.0.0.1")]


async def test_shopify_duplicates_are_ignored_by_either_id(harness: Any) -> None:
    client, queue, _, _ = harness
    body = compact(CUSTOMER_REDACT)
    first = await client.post(
        "/webhooks/shopify",
        content=body,
        headers=shopify_headers(body, "customers/redact", webhook_id="wh-9", event_id="ev-9"),
    )
    again = await client.post(
        "/webhooks/shopify",
        content=body,
        headers=shopify_headers(body, "customers/redact", webhook_id="wh-9", event_id="ev-9"),
    )
    same_event = await client.post(
        "/webhooks/shopify",
        content=body,
        headers=shopify_headers(body, "customers/redact", webhook_id="wh-10", event_id="ev-9"),
    )
    assert first.json()["status"] == "queued"
    assert again.json() == {"status": "duplicate"} and same_event.json() == {"status": "duplicate"}
    assert len(queue.submitted) == 1


async def test_concurrent_duplicate_deliveries_queue_once(harness: Any) -> None:
    client, queue, _, _ = harness
    body = compact(DATA_REQUEST)
    headers = shopify_headers(body, "customers/data_request", webhook_id="wh-race")
    responses = await asyncio.gather(
        *(client.post("/webhooks/shopify", content=body, headers=headers) for _ in range(6))
    )
    assert sorted(r.json()["status"] for r in responses) == ["duplicate"] * 5 + ["queued"]
    assert len(queue.submitted) == 1


async def test_failed_hand_over_is_503_and_the_retry_is_accepted(harness: Any) -> None:
    client, queue, _, _ = harness
    body = compact(CUSTOMER_REDACT)
    headers = shopify_headers(body, "customers/redact", webhook_id="wh-retry")
    queue.fail = True
    failed = await client.post("/webhooks/shopify", content=body, headers=headers)
    assert failed.status_code == 503 and failed.json()["code"] == "queue_unavailable"
    queue.fail = False
    retried = await client.post("/webhooks/shopify", content=body, headers=headers)
    assert retried.json()["status"] == "queued"
    assert len(queue.submitted) == 1


async def test_shopify_other_topics_malformed_and_oversized_bodies(harness: Any) -> None:
    client, queue, _, _ = harness
    body = compact({"id": 1})
    ignored = await client.post("/webhooks/shopify", content=body, headers=shopify_headers(body, "orders/create"))
    assert ignored.json() == {"status": "ignored"}
    broken = b'{"shop_domain": '
    malformed = await client.post(
        "/webhooks/shopify",
        content=broken,
        headers=shopify_headers(broken, "customers/redact", webhook_id="wh-m"),
    )
    assert malformed.status_code == 400 and malformed.json()["code"] == "malformed_webhook"
    no_customer = compact({"shop_domain": SHOP})
    missing = await client.post(
        "/webhooks/shopify",
        content=no_customer,
        headers=shopify_headers(no_customer, "customers/redact", webhook_id="wh-n"),
    )
    assert missing.status_code == 400
    foreign = compact(dict(CUSTOMER_REDACT, shop_domain="evil.example.com"))
    bad_shop = await client.post(
        "/webhooks/shopify",
        content=foreign,
        headers=shopify_headers(foreign, "customers/redact", webhook_id="wh-f"),
    )
    assert bad_shop.status_code == 400
    huge = b"{" + b" " * 5000 + b"}"
    too_big = await client.post("/webhooks/shopify", content=huge, headers=shopify_headers(huge, "shop/redact"))
    assert too_big.status_code == 413
    assert queue.submitted == []


async def test_woocommerce_customer_deleted_ping_and_bad_signature(harness: Any) -> None:
    client, queue, audit, _ = harness
    body = compact({"id": 42, "email": "ada@example.com", "first_name": "Ada"})
    headers = {
        "x-wc-webhook-signature": woocommerce_signature("wc-secret", body),
        "x-wc-webhook-topic": "customer.deleted",
        "x-wc-webhook-source": "https://tea.example/",
        "x-wc-webhook-delivery-id": "d-77",
        "content-type": "application/json",
    }
    response = await client.post("/webhooks/woocommerce", content=body, headers=headers)
    assert response.json()["status"] == "queued"
    assert queue.submitted == [
        ("erasure", "42", "woocommerce:https://tea.example", "woocommerce:delivery:d-77:erasure:42")
    ]
    ping = await client.post(
        "/webhooks/woocommerce",
        content=b"webhook_id=12",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert ping.json() == {"status": "ignored"}
    forged = await client.post(
        "/webhooks/woocommerce",
        content=body,
        headers={
            **headers,
            "x-wc-webhook-signature": woocommerce_signature("guess", body),
            "x-wc-webhook-delivery-id": "d-78",
        },
    )
    unsigned = await client.post(
        "/webhooks/woocommerce", content=body, headers={"x-wc-webhook-topic": "customer.deleted"}
    )
    assert forged.status_code == 401 and unsigned.status_code == 401
    assert [r[1] for r in audit.rejected] == ["bad_signature", "missing_signature"]
    assert len(queue.submitted) == 1


async def test_saleor_detached_jws_is_verified_against_the_jwks(
    harness: Any, httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    client, queue, audit, _ = harness
    httpx_mock.add_response(
        method="GET", url="https://saleor.example/.well-known/jwks.json", json=jwks_for(rsa_key, "k1")
    )
    body = compact({"user": {"id": "VXNlcjoyMg==", "email": "ada@example.com"}})
    headers = {
        "saleor-signature": saleor_jws(rsa_key, body),
        "saleor-event": "account_deleted",
        "saleor-api-url": SALEOR_API,
        "saleor-domain": "saleor.example",
    }
    ok = await client.post("/webhooks/saleor", content=body, headers=headers)
    assert ok.json()["status"] == "queued"
    assert queue.submitted[0][:3] == ("erasure", "VXNlcjoyMg==", "saleor:saleor.example")
    tampered = body.replace(b"VXNlcjoyMg==", b"VXNlcjoyMw==")
    bad = await client.post("/webhooks/saleor", content=tampered, headers=headers)
    assert bad.status_code == 401
    other_origin = await client.post(
        "/webhooks/saleor",
        content=body,
        headers={**headers, "saleor-api-url": "https://evil.example/graphql/"},
    )
    assert other_origin.status_code == 401
    jwks_requests = httpx_mock.get_requests(url="https://saleor.example/.well-known/jwks.json")
    assert len(jwks_requests) == 1  # cached
    assert jwks_requests[0].headers["accept"] == "application/json"
    assert [r[1] for r in audit.rejected] == ["bad_signature", "wrong_origin"]


async def test_saleor_unknown_kid_refetches_at_most_once_per_interval(
    httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    httpx_mock.add_response(url="https://saleor.example/.well-known/jwks.json", json=jwks_for(rsa_key, "k1"))
    async with httpx.AsyncClient() as http:
        receiver = SaleorWebhooks(api_url=SALEOR_API, http=http)
        body = b'{"user":{"id":"VXNlcjox"}}'
        forged_kid = {"saleor-signature": saleor_jws(rsa_key, body, kid="rotated")}
        assert await receiver.verify(forged_kid, body) == "unknown_key"
        for _ in range(5):
            assert await receiver.verify(forged_kid, body) == "unknown_key"
        assert await receiver.verify({"saleor-signature": saleor_jws(rsa_key, body)}, body) is None
        attached = jwt.api_jws.encode(body, rsa_key, algorithm="RS256", headers={"kid": "k1"})
        assert await receiver.verify({"saleor-signature": attached}, body) == "bad_signature"
        hs = jwt.api_jws.encode(
            body, "k" * 32, algorithm="HS256", headers={"kid": "k1", "b64": False}, is_payload_detached=True
        )
        assert await receiver.verify({"saleor-signature": hs}, body) == "bad_signature"
    assert len(httpx_mock.get_requests()) == 1


async def test_saleor_hmac_mode_and_jwks_failure(httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey) -> None:
    body = b'{"user":{"id":"VXNlcjox"}}'
    async with httpx.AsyncClient() as http:
        with_secret = SaleorWebhooks(api_url=SALEOR_API, http=http, secret="saleor-secret")
        good = hmac.new(b"saleor-secret", body, hashlib.sha256).hexdigest()
        assert await with_secret.verify({"saleor-signature": good}, body) is None
        assert await with_secret.verify({"x-saleor-signature": good}, body) is None
        assert await with_secret.verify({"saleor-signature": good}, body + b"\n") == "bad_signature"
        assert await with_secret.verify({}, body) == "missing_signature"
        httpx_mock.add_response(url="https://saleor.example/.well-known/jwks.json", status_code=503)
        no_keys = SaleorWebhooks(api_url=SALEOR_API, http=http)
        assert await no_keys.verify({"saleor-signature": saleor_jws(rsa_key, body)}, body) == "unknown_key"
    assert jwks_url_for("https://shop.example/graphql/") == "https://shop.example/.well-known/jwks.json"


# --- the dedupe store, on both databases --------------------------------------------------------


async def test_claims_are_durable_and_releasable(database: Database) -> None:
    assert await claim_delivery(database, "shopify", ["a", "b"], "customers/redact")
    assert not await claim_delivery(database, "shopify", ["c", "b"], "customers/redact")
    assert await claim_delivery(database, "shopify", ["c"], "customers/redact")  # rolled back above
    assert await claim_delivery(database, "woocommerce", ["a"], "customer.deleted")  # per platform
    await release_delivery(database, "shopify", ["a", "b"])
    assert await claim_delivery(database, "shopify", ["a"], "customers/redact")
    assert await prune_deliveries(database, datetime.now(UTC) - timedelta(hours=1)) == 0
    assert (
        await prune_deliveries(database, datetime.now(UTC) + timedelta(seconds=1)) == 3
    )  # shopify a, c; woocommerce a
    with pytest.raises(ValueError):
        await claim_delivery(database, "shopify", [], "x")
