"""Saleor webhooks: `Saleor-Signature` as a detached JWS (RS256, RFC 7797 `b64: false`) verified
against the shop's JWKS, or, for webhooks created with a `secretKey` (deprecated by Saleor), a hex
HMAC-SHA256 of the raw body.

Privacy-relevant events: `ACCOUNT_DELETED` and `CUSTOMER_DELETED` ask us to erase what the
middleware holds about that user (consent records, keys, audit side records). The payload is what
the webhook's subscription query selects; this receiver expects `user { id }` in it (see README).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import orjson
from jwt.api_jws import PyJWS
from pydantic import SecretStr

from ...platforms.saleor import SaleorWebhookSettings
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

logger = logging.getLogger("privacy_middleware.integrations.saleor")

ERASURE_EVENTS: dict[str, RequestKind] = {"account_deleted": "erasure", "customer_deleted": "erasure"}
SIGNATURE_HEADERS = ("saleor-signature", "x-saleor-signature")
# How often an unknown `kid` may trigger a JWKS refetch (key rotation), so forged kids cannot
# turn every request into an outbound call.
REFETCH_INTERVAL = 60.0


def jwks_url_for(api_url: str) -> str:
    """`https://shop.example/graphql/` -> `https://shop.example/.well-known/jwks.json`."""
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("the Saleor API URL must be absolute")
    return f"{parts.scheme}://{parts.netloc}/.well-known/jwks.json"


class SaleorWebhooks:
    """Receiver for one Saleor instance. `api_url` is its GraphQL URL (as in `Saleor-Api-Url`)."""

    platform = "saleor"

    def __init__(
        self,
        *,
        api_url: str,
        http: httpx.AsyncClient,
        secret: str | SecretStr | None = None,
        jwks_cache_seconds: float = 600.0,
    ) -> None:
        self.api_url = api_url
        self.jwks_url = jwks_url_for(api_url)
        self.http = http
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        self._secret = value.encode() if value else None
        self.jwks_cache_seconds = jwks_cache_seconds
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._jws = PyJWS(algorithms=["RS256"])

    async def _fetch_keys(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            response = await self.http.get(self.jwks_url, headers={"accept": "application/json"})
            response.raise_for_status()
            document = orjson.loads(response.content)
            keys = jwt.PyJWKSet.from_dict(document)
        except (httpx.HTTPError, orjson.JSONDecodeError, jwt.PyJWTError) as exc:
            logger.warning("Saleor JWKS fetch failed (%s)", type(exc).__name__)
            return
        self._keys = {k.key_id: k for k in keys.keys if k.key_id and k.algorithm_name in ("RS256", None)}

    async def _key(self, kid: str) -> Any | None:
        age = time.monotonic() - self._fetched_at
        if age > self.jwks_cache_seconds or (kid not in self._keys and age > REFETCH_INTERVAL):
            await self._fetch_keys()
        found = self._keys.get(kid)
        return found.key if found is not None else None

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        origin = headers.get("saleor-api-url")
        if origin is not None and origin.rstrip("/") != self.api_url.rstrip("/"):
            return "wrong_origin"
        signature = next((headers[h].strip() for h in SIGNATURE_HEADERS if headers.get(h)), None)
        if signature is None:
            return "missing_signature"
        if self._secret is not None:
            expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            return None if hmac.compare_digest(expected.encode(), signature.encode("latin-1")) else "bad_signature"
        try:
            header = jwt.get_unverified_header(signature)
        except jwt.PyJWTError:
            return "bad_signature"
        kid = header.get("kid")
        if header.get("alg") != "RS256" or header.get("b64") is not False or not isinstance(kid, str):
            return "bad_signature"
        key = await self._key(kid)
        if key is None:
            return "unknown_key"
        try:
            self._jws.decode_complete(signature, key, algorithms=["RS256"], detached_payload=body)
        except jwt.PyJWTError:
            return "bad_signature"
        return None

    def interpret(self, headers: Mapping[str, str], body: bytes) -> WebhookDelivery | None:
        event = (headers.get("saleor-event") or headers.get("x-saleor-event") or "").strip().lower()
        kind = ERASURE_EVENTS.get(event)
        if kind is None:
            return None
        payload = json_object(body)
        user = payload.get("user")
        if not isinstance(user, dict):
            raise MalformedWebhook("user is missing: select `user { id }` in the subscription query")
        subject = as_id(user.get("id"), "user.id")
        host = urlsplit(self.api_url).netloc
        return WebhookDelivery(
            platform=self.platform,
            topic=event,
            source=f"saleor:{host}",
            delivery_ids=(body_digest(body),),
            requests=(SubjectRequest(kind, subject),),
        )


def from_settings(hooks: WebhookSettings, http: httpx.AsyncClient) -> SaleorWebhooks | None:
    """The `saleor` entry of the webhook-receiver table (PRIVACY_WEBHOOKS__SALEOR_API_URL)."""
    own = hooks.platform(SaleorWebhookSettings)
    if not own.api_url:
        return None
    return SaleorWebhooks(api_url=own.api_url, http=http, secret=own.secret)
