"""The Set-Cookie filter hands a start that sets no cookie, answering a request that carries none, on
as it is (no coroutine of its own), and still filters every start that sets one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio

POLICY = {
    "policy": {"name": "t", "version": "1", "effective_date": "2026-01-01"},
    "categories": {"user.name": {}},
    "purposes": {
        "order_fulfilment": {"legal_basis": "contract"},
        "analytics": {"legal_basis": "consent"},
    },
    "tracking": {"cookies": [{"pattern": "_ga*", "purpose": "analytics"}]},
}


async def test_a_start_without_cookies_goes_on_as_it_is_and_one_with_them_is_filtered(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    await runtime.ensure_started()
    try:
        gate = runtime.cookie_gate
        assert gate is not None
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"accept", b"*/*")], "query_string": b""}
        plain = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        await gate.wrap(scope, send)(plain)
        assert sent[-1] is plain
        setting = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"Set-Cookie", b"_ga=1; Path=/"), (b"set-cookie", b"sid=2; Path=/")],
        }
        await gate.wrap(scope, send)(setting)
        assert [value for _, value in sent[-1]["headers"]] == [b"sid=2; Path=/"]  # no consent: _ga not set
        with_cookie = {**scope, "headers": [(b"Cookie", b"_ga=1")]}
        await gate.wrap(with_cookie, send)(plain)
        expired = [value for key, value in sent[-1]["headers"] if key == b"set-cookie"]
        assert expired and all(value.startswith(b"_ga=") for value in expired)  # the browser's _ga expired
        body = {"type": "http.response.body", "body": b"ok"}
        await gate.wrap(scope, send)(body)
        assert sent[-1] is body
    finally:
        await runtime.stop()
