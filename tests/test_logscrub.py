"""No query string, header value, SQL parameter or client address reaches a log line (logscrub.py)."""

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


def test_httpcore_trace_keeps_header_names_and_drops_their_values(caplog: pytest.LogCaptureFixture) -> None:
    install()
    trace = logging.getLogger("httpcore.http11")  # a child: filters do not inherit, install covers it
    with caplog.at_level(logging.DEBUG, logger="httpcore.http11"):
        trace.debug(
            "receive_response_headers.complete return_value=(b'HTTP/1.1', 302, b'Found', "
            "[(b'set-cookie', b'sessionid=abc123secret; Path=/'), (b'location', b\"/o/1?token=t0k3n'x\")])"
        )
    [line] = [record.getMessage() for record in caplog.records if record.name == "httpcore.http11"]
    assert "(b'set-cookie', b'[redacted]')" in line and "(b'location', b'[redacted]')" in line
    assert "abc123secret" not in line and "t0k3n" not in line


def test_sql_parameters_rows_and_aiosqlite_calls_lose_their_values(caplog: pytest.LogCaptureFixture) -> None:
    import functools

    install()
    engine = logging.getLogger("sqlalchemy.engine.Engine")
    calls = logging.getLogger("aiosqlite")
    with caplog.at_level(logging.DEBUG, logger="sqlalchemy"), caplog.at_level(logging.DEBUG, logger="aiosqlite"):
        engine.info("SELECT id FROM customers WHERE email = ?")
        engine.info("[%s] %r", "generated in 0.0001s", ("ada@example.com",))
        engine.debug("Row %r", ("cus_1", "ada@example.com"))
        calls.debug("executing %s", functools.partial(print, "INSERT ...", ("ada@example.com",)))
    lines = [record.getMessage() for record in caplog.records]
    assert "SELECT id FROM customers WHERE email = ?" in lines  # the statement (placeholders) stays
    assert "[generated in 0.0001s] [redacted]" in lines and "Row [redacted]" in lines
    assert "executing print(...)" in lines
    assert not any("ada@example.com" in line for line in lines)


def test_access_log_shows_the_clients_network_not_its_address(caplog: pytest.LogCaptureFixture) -> None:
    install()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="uvicorn.access"):
            access.info('%s - "%s %s HTTP/%s" %d', "203.0.113.77:5000", "GET", "/orders", "1.1", 200)
    finally:
        access.removeHandler(caplog.handler)
    [line] = {record.getMessage() for record in caplog.records if record.name == "uvicorn.access"}
    assert line.startswith("203.0.113.0/24 - ") and "203.0.113.77" not in line
