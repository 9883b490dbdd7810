"""Shopify's mandatory compliance webhooks: `customers/data_request`, `customers/redact`, `shop/redact`.

Verification follows shopify.dev "verify deliveries": HMAC-SHA256 of the RAW body keyed with the
app's client secret, standard base64, compared in constant time with `X-Shopify-Hmac-Sha256`
(`Shopify-Hmac-Sha256` for Events). Several secrets are tried, so the old one keeps working while
Shopify switches to a rotated one (that can take up to an hour).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

import httpx
from pydantic import SecretStr

from ...platforms.shopify import ShopifyWebhookSettings
from ...settings import WebhookSettings
from ..common import (
    MalformedWebhook,
    RequestKind,
    SubjectRequest,
    WebhookDelivery,
    as_id,
    body_digest,
    json_object,
)

COMPLIANCE_TOPICS: dict[str, RequestKind] = {
    "customers/data_request": "access",
    "customers/redact": "erasure",
    "shop/redact": "shop_erasure",
}
SIGNATURE_HEADERS = ("x-shopify-hmac-sha256", "shopify-hmac-sha256")
ID_HEADERS = ("x-shopify-webhook-id", "x-shopify-event-id", "shopify-event-id")
SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,98}\.myshopify\.com$")


def shopify_hmac(secret: str | bytes, body: bytes) -> str:
    """The value Shopify puts in `X-Shopify-Hmac-Sha256` for `body`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def _header(headers: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value:
            return value.strip()
    return None


class ShopifyWebhooks:
    """Receiver for the compliance topics. `secrets`: the app's client secret(s), newest first."""

    platform = "shopify"

    def __init__(self, secrets: Iterable[str | SecretStr], *, shops: Iterable[str] = ()) -> None:
        self._keys = [(s.get_secret_value() if isinstance(s, SecretStr) else s).encode() for s in secrets]
        if not self._keys or any(not k for k in self._keys):
            raise ValueError("Shopify webhooks need at least one non-empty app secret")
        self.shops = frozenset(shops)

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        received = _header(headers, SIGNATURE_HEADERS)
        if received is None:
            return "missing_signature"
        try:
            digest = base64.b64decode(received.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return "bad_signature"
        matched = False
        for key in self._keys:  # every secret is tried, so timing does not tell which matched
            matched |= hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), digest)
        return None if matched else "bad_signature"

    def interpret(self, headers: Mapping[str, str], body: bytes) -> WebhookDelivery | None:
        topic = (headers.get("x-shopify-topic") or headers.get("shopify-topic") or "").strip()
        kind = COMPLIANCE_TOPICS.get(topic)
        if kind is None:
            return None
        payload = json_object(body)
        shop = str(payload.get("shop_domain") or headers.get("x-shopify-shop-domain") or "").lower()
        if not SHOP_DOMAIN.match(shop):
            raise MalformedWebhook("shop_domain is not a myshopify.com domain")
        if self.shops and shop not in self.shops:
            raise MalformedWebhook("the delivery is for a shop this app does not serve")
        if kind == "shop_erasure":
            subject = shop
        else:
            customer = payload.get("customer")
            if not isinstance(customer, dict):
                raise MalformedWebhook("customer is missing")
            subject = as_id(customer.get("id"), "customer.id")
        ids = tuple(f"{name}:{value}" for name in ID_HEADERS if (value := headers.get(name)))
        return WebhookDelivery(
            platform=self.platform,
            topic=topic,
            source=f"shopify:{shop}",
            delivery_ids=ids or (body_digest(body),),
            requests=(SubjectRequest(kind, subject),),
        )


def from_settings(hooks: WebhookSettings, http: httpx.AsyncClient) -> ShopifyWebhooks | None:
    """The `shopify` entry of the webhook-receiver table (PRIVACY_WEBHOOKS__SHOPIFY_SECRETS)."""
    own = hooks.platform(ShopifyWebhookSettings)
    return ShopifyWebhooks(own.secrets, shops=own.shops) if own.secrets else None
