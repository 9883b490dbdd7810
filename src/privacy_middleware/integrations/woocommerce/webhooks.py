"""WooCommerce webhooks: `X-WC-Webhook-Signature` is the base64 HMAC-SHA256 of the raw body keyed
with the webhook's secret (WC_Webhook::generate_signature). `customer.deleted` asks us to erase
what the middleware holds about that customer.

When a webhook is saved, WooCommerce sends an unsigned ping whose whole body is `webhook_id=<n>`;
it carries no data and is answered 200 without being queued, so the webhook is not disabled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

import httpx
from pydantic import SecretStr

from ...platforms.woocommerce import WooCommerceWebhookSettings
from ...settings import WebhookSettings
from ..common import RequestKind, SubjectRequest, WebhookDelivery, as_id, body_digest, json_object

TOPICS: dict[str, RequestKind] = {"customer.deleted": "erasure"}
PING = re.compile(rb"^webhook_id=\d{1,20}$")


def woocommerce_signature(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def is_ping(body: bytes) -> bool:
    return PING.match(body) is not None


class WooCommerceWebhooks:
    platform = "woocommerce"

    def __init__(self, secrets: Iterable[str | SecretStr]) -> None:
        self._keys = [(s.get_secret_value() if isinstance(s, SecretStr) else s).encode() for s in secrets]
        if not self._keys or any(not k for k in self._keys):
            raise ValueError("WooCommerce webhooks need at least one non-empty secret")

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        received = headers.get("x-wc-webhook-signature")
        if not received:
            return None if is_ping(body) else "missing_signature"
        try:
            digest = base64.b64decode(received.strip().encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return "bad_signature"
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), digest)
        return None if matched else "bad_signature"

    def interpret(self, headers: Mapping[str, str], body: bytes) -> WebhookDelivery | None:
        if is_ping(body):
            return None
        topic = (headers.get("x-wc-webhook-topic") or "").strip()
        kind = TOPICS.get(topic)
        if kind is None:
            return None
        payload = json_object(body)
        subject = as_id(payload.get("id"), "id")
        source = (headers.get("x-wc-webhook-source") or "").strip().rstrip("/")[:150]
        ids = [body_digest(body)]
        if delivery := headers.get("x-wc-webhook-delivery-id"):
            ids.insert(0, f"delivery:{delivery.strip()}")
        return WebhookDelivery(
            platform=self.platform,
            topic=topic,
            source=f"woocommerce:{source or 'unknown'}",
            delivery_ids=tuple(ids),
            requests=(SubjectRequest(kind, subject),),
        )


def from_settings(hooks: WebhookSettings, http: httpx.AsyncClient) -> WooCommerceWebhooks | None:
    """The `woocommerce` entry of the webhook-receiver table (PRIVACY_WEBHOOKS__WOOCOMMERCE_SECRETS)."""
    own = hooks.platform(WooCommerceWebhookSettings)
    return WooCommerceWebhooks(own.secrets) if own.secrets else None
