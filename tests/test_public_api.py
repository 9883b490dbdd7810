"""The package's public face: every exported name resolves, and the shop's code can read the request's context."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

import privacy_middleware
from privacy_middleware import (
    PrivacyMiddleware,
    PrivacyTransport,
    RequestContext,
    Settings,
    load_policy,
    request_context,
)

DEMO_POLICY = Path(privacy_middleware.__file__).resolve().parent / "demo" / "policy.toml"
SECRET = "public-api-test-secret-long-enough-32b"


def test_every_name_in_all_resolves_and_star_import_gives_them() -> None:
    assert set(privacy_middleware.__all__) >= {
        "PrivacyMiddleware",
        "PrivacyTransport",
        "Settings",
        "load_policy",
        "Policy",
        "PrivacyError",
        "Principal",
        "request_context",
        "__version__",
    }
    namespace: dict[str, Any] = {}
    exec("from privacy_middleware import *", namespace)
    for name in privacy_middleware.__all__:
        assert namespace[name] is getattr(privacy_middleware, name)
    with pytest.raises(AttributeError):
        _ = privacy_middleware.NoSuchThing  # type: ignore[attr-defined]


def test_load_policy_gives_the_policy_model() -> None:
    assert isinstance(load_policy(DEMO_POLICY), privacy_middleware.Policy)


@pytest.mark.anyio
async def test_request_context_is_visible_to_the_shop_on_a_planned_route(tmp_path: Path) -> None:
    seen: list[RequestContext | None] = []

    async def shop(scope: Any, receive: Any, send: Any) -> None:
        seen.append(request_context())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    settings = Settings(
        policy_file=DEMO_POLICY,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": SECRET, "algorithms": ["HS256"]},
    )
    app = PrivacyMiddleware(shop, settings)
    assert isinstance(app.transport(), PrivacyTransport)
    now = int(time.time())
    token = jwt.encode({"sub": "cust-7", "iat": now, "exp": now + 300}, SECRET, algorithm="HS256")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            await client.get("/not-in-the-policy")
            response = await client.get("/orders/1", headers={"authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
    finally:
        await app.runtime.stop()
    assert request_context() is None
    assert seen[0] is None
    planned = seen[1]
    assert planned is not None and planned.principal is not None
    assert planned.principal.subject == "cust-7"
