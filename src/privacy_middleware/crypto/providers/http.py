"""One place that turns transport failures and HTTP statuses of a key service into our errors.

Response bodies are never copied into messages: a key service may echo what it was sent.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import DecryptionFailed, KeyServiceUnavailable


async def send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    try:
        return await client.send(request)
    except httpx.TimeoutException:
        raise KeyServiceUnavailable("the key service did not answer in time") from None
    except httpx.HTTPError:
        raise KeyServiceUnavailable("the key service could not be reached") from None


def raise_for_status(response: httpx.Response, *, unwrapping: bool, rejected_ciphertext: bool = False) -> None:
    """Map a non-2xx answer: 5xx/429/auth problems are outages, a refused ciphertext is a bad key."""
    status = response.status_code
    if status < 300:
        return
    if status in (401, 403):
        raise KeyServiceUnavailable(f"the key service refused our credentials (HTTP {status})")
    if unwrapping and (rejected_ciphertext or status == 400):
        raise DecryptionFailed("a stored key could not be unwrapped")
    if status == 429 or status >= 500:
        raise KeyServiceUnavailable(f"the key service is unavailable (HTTP {status})")
    raise KeyServiceUnavailable(f"the key service rejected the request (HTTP {status})")


def json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise KeyServiceUnavailable("the key service sent an unexpected answer") from None
    if not isinstance(body, dict):
        raise KeyServiceUnavailable("the key service sent an unexpected answer")
    return body
