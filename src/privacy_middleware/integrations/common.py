"""What the platform integrations share: webhook contracts and the adapters' HTTP discipline."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import orjson

from ..rights.adapter import ShopAdapterError

RequestKind = Literal["access", "erasure", "shop_erasure"]
# submit(kind, subject, source, idempotency_key): hands a subject request to the queue.
SubmitRequest = Callable[[RequestKind, str, str, str], Awaitable[None]]
# on_rejected(platform, reason, client_ip): audits a webhook that failed verification.
RejectedWebhook = Callable[[str, str, str | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SubjectRequest:
    kind: RequestKind
    subject: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A verified delivery, reduced to what the privacy side acts on."""

    platform: str
    topic: str
    source: str
    delivery_ids: tuple[str, ...]
    requests: tuple[SubjectRequest, ...] = field(default_factory=tuple)

    def idempotency_key(self, request: SubjectRequest) -> str:
        return f"{self.platform}:{self.delivery_ids[0]}:{request.kind}:{request.subject}"


class WebhookReceiver(Protocol):
    """One platform's webhook rules: verify the raw body, then say what it asks for."""

    platform: str

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """None when authentic, else a short reason (never a secret or a payload value)."""
        ...

    def interpret(self, headers: Mapping[str, str], body: bytes) -> WebhookDelivery | None:
        """The delivery's subject requests; None for a topic the privacy side ignores.
        Raises `MalformedWebhook` for an authentic body it cannot read."""
        ...


class MalformedWebhook(ValueError):
    """An authentic delivery whose body does not have the documented shape."""


def body_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def json_object(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedWebhook("the body is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedWebhook("the body is not a JSON object")
    return document


def as_id(value: Any, what: str) -> str:
    """A platform id (number or string) as text; refuses anything else."""
    if isinstance(value, bool) or value is None:
        raise MalformedWebhook(f"{what} is missing")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 200:
        return value.strip()
    raise MalformedWebhook(f"{what} is not an id")


RETRYABLE_STATUSES = {408, 409, 423, 425, 429, 500, 502, 503, 504}


class ShopApiError(ShopAdapterError):
    """The platform answered with an HTTP error status (kept so callers can tell 404 apart)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, retryable=status in RETRYABLE_STATUSES)
        self.status = status


async def call(client: httpx.AsyncClient, request: httpx.Request, operation: str) -> httpx.Response:
    """Send one platform API request; failures become `ShopAdapterError` naming the operation only."""
    try:
        response = await client.send(request)
    except httpx.TimeoutException:
        raise ShopAdapterError(f"{operation}: the shop API timed out", retryable=True) from None
    except httpx.TransportError:
        raise ShopAdapterError(f"{operation}: the shop API is unreachable", retryable=True) from None
    if response.status_code >= 400:
        raise ShopApiError(f"{operation}: the shop API answered {response.status_code}", status=response.status_code)
    return response


def response_json(response: httpx.Response, operation: str) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ShopAdapterError(f"{operation}: the shop API did not answer JSON") from None


async def graphql(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    query: str,
    variables: dict[str, Any],
    operation: str,
) -> dict[str, Any]:
    """POST a GraphQL document; top-level `errors` are failures (THROTTLED is retryable)."""
    request = httpx.Request(
        "POST",
        url,
        headers={**headers, "content-type": "application/json", "accept": "application/json"},
        content=orjson.dumps({"query": query, "variables": variables}),
    )
    document = response_json(await call(client, request, operation), operation)
    if not isinstance(document, dict):
        raise ShopAdapterError(f"{operation}: unexpected GraphQL answer")
    errors = document.get("errors")
    if errors:
        codes = {str((e.get("extensions") or {}).get("code", "")) for e in errors if isinstance(e, dict)}
        raise ShopAdapterError(
            f"{operation}: GraphQL errors ({', '.join(sorted(c for c in codes if c)) or 'unknown'})",
            retryable="THROTTLED" in codes,
        )
    data = document.get("data")
    if not isinstance(data, dict):
        raise ShopAdapterError(f"{operation}: the GraphQL answer has no data")
    return data


def _field_path(error: Any) -> str:
    """Shopify names the field as a path list, Saleor as a string."""
    field = error.get("field") if isinstance(error, dict) else None
    if isinstance(field, list):
        return ".".join(map(str, field))
    return field if isinstance(field, str) else ""


def user_errors(payload: Any, operation: str, key: str = "userErrors") -> None:
    """Mutation payloads report refusals in a list; any entry is a failure (fields named, not values)."""
    errors = payload.get(key) if isinstance(payload, dict) else None
    if errors:
        fields = sorted({_field_path(e) for e in errors} - {""})
        raise ShopAdapterError(f"{operation}: refused" + (f" (fields: {', '.join(fields)})" if fields else ""))
