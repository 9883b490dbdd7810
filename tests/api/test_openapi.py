"""`<mount>/openapi.json`: a valid OpenAPI 3.1 document generated from the routes the API serves.

Every privacy-API response the demo tests see is also checked against it (tests/demo/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from privacy_middleware.api.openapi import UNDOCUMENTED, served_operations
from privacy_middleware.demo.run import build_demo
from support.openapi import OpenAPIChecker

pytestmark = pytest.mark.anyio


async def test_openapi_is_valid_and_describes_every_served_route(tmp_path: Path, asgi_lifespan: Any) -> None:
    app, _ = build_demo(tmp_path, audit={"retention_interval_seconds": 0}, mount_path="/gdpr")
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        response = await client.get("/gdpr/openapi.json")
        assert response.status_code == 200
        document = response.json()
        checker = OpenAPIChecker(document, mount="/gdpr")  # validates the document itself
        assert document["openapi"].startswith("3.1")
        served = {(m.lower(), p) for m, p in served_operations(list(app.runtime.api.routes))}
        described = {(m, p) for p, item in document["paths"].items() for m in item}
        assert served == described
        assert "/gdpr/me/export" in document["paths"] and "/gdpr/policy" in document["paths"]
        undocumented = [
            f"{m.upper()} {p}"
            for p, item in document["paths"].items()
            for m, op in item.items()
            if op["summary"] == UNDOCUMENTED
        ]
        assert undocumented == []
        for path in ("/gdpr/policy", "/gdpr/health", "/gdpr/consent", "/.well-known/gpc.json", "/gdpr/me/export"):
            answer = await client.get(path)
            checker.check("GET", path, answer.status_code, answer.headers["content-type"], answer.content)
        assert ("GET", "/gdpr/me/export", 401) in checker.checked


def test_a_response_that_drifts_from_the_description_is_caught() -> None:
    from starlette.routing import Mount, Route

    from privacy_middleware.api.openapi import openapi_document

    async def endpoint(request: Any) -> Any:
        raise NotImplementedError

    document = openapi_document([Mount("/privacy", routes=[Route("/health", endpoint)])], "/privacy")
    checker = OpenAPIChecker(document)
    checker.check("GET", "/privacy/health", 200, "application/json", b'{"status": "ok", "policy_version": "1"}')
    with pytest.raises(AssertionError, match="policy_version"):
        checker.check("GET", "/privacy/health", 200, "application/json", b'{"status": "ok"}')
    with pytest.raises(AssertionError, match="not in the OpenAPI"):
        checker.check("POST", "/privacy/health", 200, "application/json", b"{}")
