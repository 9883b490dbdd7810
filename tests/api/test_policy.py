"""GET /privacy/policy, /privacy/health and /metrics through the middleware, mounted the Starlette way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("shop")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        policy_file=demo_policy_path(),
        database_url=database_url,
        data_dir=tmp_path,
        jwt={"secret": "x" * 40, "algorithms": ["HS256"]},
    )


async def test_policy_health_and_metrics_via_starlette_middleware(settings: Settings, asgi_lifespan: Any) -> None:
    app = Starlette(routes=[Route("/", hello)], middleware=[Middleware(PrivacyMiddleware, settings=settings)])
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        assert (await client.get("/")).text == "shop"
        policy = (await client.get("/privacy/policy")).json()
        assert policy["version"] == "2026.11"
        assert policy["effective_date"] == "2026-11-01"
        assert policy["policy"]["purposes"]["marketing"]["consent"] == "opt_in"
        assert [h["version"] for h in policy["history"]] == ["2026.11"]
        assert (await client.get("/privacy/health")).json()["status"] == "ok"
        missing = await client.get("/privacy/nope")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        bad_token = await client.get("/privacy/policy", headers={"authorization": "Bearer nope"})
        assert bad_token.status_code == 401 and bad_token.json()["code"] == "invalid_token"
        metrics = (await client.get("/metrics")).text
        assert "privacy_refusals_total" in metrics
