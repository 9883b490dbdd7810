"""PRIVACY_LOG_LEVEL and PRIVACY_LOG_FORMAT=json: one JSON object per line, no personal data, tokens or queries."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest

import privacy_middleware
from privacy_middleware import PrivacyMiddleware, Settings
from privacy_middleware.logs import configure_logging

DEMO_POLICY = Path(privacy_middleware.__file__).resolve().parent / "demo" / "policy.toml"
SECRET = "logs-test-secret-that-is-long-enough-32"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    logger = logging.getLogger("privacy_middleware")
    level = logger.level
    yield
    configure_logging(Settings(log_format="text"))
    logger.setLevel(level)


async def shop(scope: Any, receive: Any, send: Any) -> None:
    logging.getLogger("privacy_middleware.shop").warning("the shop says hello")
    body = orjson.dumps({"id": 3, "email": "ada@example.com", "name": "Ada Lovelace"})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        policy_file=DEMO_POLICY,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": SECRET, "algorithms": ["HS256"]},
        **values,
    )


@pytest.mark.anyio
async def test_json_logs_carry_request_id_route_outcome_and_nothing_personal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = PrivacyMiddleware(shop, settings(tmp_path, log_format="json", log_level="info"))
    now = int(time.time())
    token = jwt.encode({"sub": "3", "iat": now, "exp": now + 300}, SECRET, algorithm="HS256")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            ok = await client.get(
                "/me?email=ada@example.com", headers={"authorization": f"Bearer {token}", "x-request-id": "req-42"}
            )
            refused = await client.get("/me", headers={"authorization": "Bearer not-a-token"})
    finally:
        await app.runtime.stop()
    assert ok.status_code == 200 and refused.status_code == 401
    err = capsys.readouterr().err
    records = [orjson.loads(line) for line in err.splitlines() if line.strip()]
    assert records, err
    access = [r for r in records if r["logger"] == "privacy_middleware.access"]
    assert [(r["route"], r["outcome"]) for r in access] == [("GET /me", "passed"), ("GET /me", "refused")]
    assert access[0]["request_id"] == "req-42"
    assert access[1]["code"] == "invalid_token" and len(access[1]["request_id"]) == 32
    shop_line = next(r for r in records if r["message"] == "the shop says hello")
    assert shop_line["request_id"] == "req-42" and shop_line["route"] == "GET /me"
    for secret in ("ada@example.com", "Ada Lovelace", token, "not-a-token", "email="):
        assert secret not in err


@pytest.mark.anyio
async def test_log_level_is_honoured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = PrivacyMiddleware(shop, settings(tmp_path, log_format="json", log_level="ERROR"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            await client.get("/me", headers={"authorization": "Bearer not-a-token"})
    finally:
        await app.runtime.stop()
    assert logging.getLogger("privacy_middleware").getEffectiveLevel() == logging.ERROR
    assert capsys.readouterr().err.strip() == ""


@pytest.mark.anyio
async def test_access_record_reaches_a_handler_added_after_start_and_none_is_built_without_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = PrivacyMiddleware(shop, settings(tmp_path, log_format="text", log_level="info"))
    root = logging.getLogger()
    kept = list(root.handlers)  # pytest's own capture handlers
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            for handler in kept:  # no handler anywhere: the record is not built at all
                root.removeHandler(handler)
            before = logging.getLogRecordFactory()
            built: list[str] = []

            def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = before(*args, **kwargs)
                built.append(record.name)
                return record

            logging.setLogRecordFactory(counting)
            try:
                await client.get("/me", headers={"authorization": "Bearer not-a-token"})
                root.addHandler(caplog.handler)  # a handler added later is heard from the next request on
                await client.get("/me", headers={"authorization": "Bearer not-a-token", "x-request-id": "r-7"})
            finally:
                logging.setLogRecordFactory(before)
    finally:
        for handler in kept:
            if handler not in root.handlers:
                root.addHandler(handler)
        await app.runtime.stop()
    assert built.count("privacy_middleware.access") == 1
    [access] = [r for r in caplog.records if r.name == "privacy_middleware.access"]
    assert (access.request_id, access.outcome, access.code) == ("r-7", "refused", "invalid_token")  # type: ignore[attr-defined]


def test_a_handler_above_info_or_behind_propagate_false_does_not_hear_the_access_record() -> None:
    from privacy_middleware.logs import access_log, heard

    package = logging.getLogger("privacy_middleware")
    root = logging.getLogger()
    saved = (package.level, package.propagate, list(root.handlers))
    package.setLevel(logging.INFO)
    for handler in saved[2]:
        root.removeHandler(handler)
    loud = logging.StreamHandler()
    try:
        assert not heard(access_log, logging.INFO)  # no handler; the last resort takes warnings only
        assert heard(access_log, logging.WARNING)
        loud.setLevel(logging.WARNING)
        root.addHandler(loud)
        assert not heard(access_log, logging.INFO)
        loud.setLevel(logging.INFO)
        assert heard(access_log, logging.INFO)
        package.propagate = False
        assert not heard(access_log, logging.INFO)
    finally:
        root.removeHandler(loud)
        for handler in saved[2]:
            root.addHandler(handler)
        package.setLevel(saved[0])
        package.propagate = saved[1]
