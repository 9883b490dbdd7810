"""A route without a plan, where no cookie or outbound gate applies, is one call to the app (its
`send` wrapped by the card sentinel on responses only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from privacy_middleware.asgi.card_responses import MaskingResponse
from privacy_middleware.context import current_scope
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio

POLICY = {
    "policy": {"name": "t", "version": "1", "effective_date": "2026-01-01"},
    "categories": {"user.name": {}},
    "purposes": {"order_fulfilment": {"legal_basis": "contract"}},
    "routes": [
        {"method": "GET", "path": "/orders/{id}", "response": {"fields": [{"select": "name", "category": "user.name"}]}}
    ],
}


async def _call(app: Any) -> tuple[Any, Any, Any]:
    seen: dict[str, Any] = {}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope=scope, send=send, context=current_scope.get())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/products", "headers": [], "query_string": b""}
    await app(inner)(scope, receive, send)
    assert sent[0]["status"] == 204
    # The card sentinel's wrapper (masking card numbers in JSON answers) must hand on to the server's own send.
    sentinel = getattr(seen["send"], "__self__", None)
    assert isinstance(sentinel, MaskingResponse)
    return sentinel.downstream is send, seen["scope"] is scope, seen["context"]


async def test_pass_through_hands_the_servers_own_send_and_scope_to_the_app(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    same_send, same_scope, context = await _call(lambda inner: PrivacyMiddleware(inner, runtime=runtime))
    assert (same_send, same_scope, context) == (True, True, None)


async def test_with_governed_cookies_pass_through_still_filters_set_cookie(tmp_path: Path) -> None:
    policy = {**POLICY, "tracking": {"cookies": [{"pattern": "_ga*", "purpose": "order_fulfilment"}]}}
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(policy))
    same_send, _, context = await _call(lambda inner: PrivacyMiddleware(inner, runtime=runtime))
    assert same_send is False and context is not None
