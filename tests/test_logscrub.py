"""No query string reaches a log line: uvicorn's access log and httpx's request log print full URLs."""

from __future__ import annotations

import logging

import httpx
import pytest
from pytest_httpx import HTTPXMock

from privacy_middleware.logscrub import install

pytestmark = pytest.mark.anyio


async def test_httpx_request_log_has_no_query_string(httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture) -> None:
    install()
    httpx_mock.add_response(json={})
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient() as client:
        await client.get("http://shop.internal/orders/ord_1?access_token=secret-order-token&email=ada@example.com")
    lines = [record.getMessage() for record in caplog.records]
    assert any("/orders/ord_1" in line for line in lines)
    assert not any("secret-order-token" in line or "ada@example.com" in line for line in lines)


def test_access_log_line_has_no_query_string(caplog: pytest.LogCaptureFixture) -> None:
    install()
    access = logging.getLogger("uvicorn.access")  # uvicorn's own config stops it propagating to the root
    access.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="uvicorn.access"):
            access.info(
                '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/orders/1?token=secret-order-token", "1.1", 200
            )
    finally:
        access.removeHandler(caplog.handler)
    [line] = {record.getMessage() for record in caplog.records if record.name == "uvicorn.access"}
    assert "/orders/1?[redacted]" in line and "secret-order-token" not in line
