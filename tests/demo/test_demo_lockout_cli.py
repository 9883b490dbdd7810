"""`lockout list` and `lockout reset` on a demo whose lockout counters are shared through Redis."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from conftest import REDIS_TEST_URL
from privacy_middleware.cli import main as cli
from privacy_middleware.demo.run import build_demo, write_env_file
from support.demo import Demo

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    """--env-file puts its variables into this process's environment; take them out again."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
async def shared_demo(tmp_path: Path, asgi_lifespan: Any, redis_prefix: str) -> AsyncIterator[Demo]:
    app, shop = build_demo(
        tmp_path, audit={"retention_interval_seconds": 0}, redis_url=REDIS_TEST_URL, redis_prefix=redis_prefix
    )
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.5", 40000)), base_url="http://shop"
        ) as client,
    ):
        yield Demo(app, shop, client, tmp_path)


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_an_operator_lists_and_lifts_a_lockout(
    shared_demo: Demo, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = shared_demo
    await demo.register()
    login = {"email": "ada@example.com", "password": "wrong password"}
    for _ in range(10):
        await demo.client.post("/auth/login", json=login)
    right = {"email": "ada@example.com", "password": "correct horse battery"}
    assert (await demo.client.post("/auth/login", json=right)).status_code == 429
    await demo.app.runtime.audit.flush()

    env = write_env_file(demo.data_dir)
    with env.open("a") as handle:
        handle.write(f"PRIVACY_REDIS_URL={REDIS_TEST_URL}\nPRIVACY_REDIS_PREFIX={redis_prefix}\n")
    code, out, _ = await run(capsys, "--env-file", str(env), "lockout", "list", "--json")
    assert code == 0
    lockouts = orjson.loads(out)["lockouts"]
    assert lockouts and not any(lock["reset"] for lock in lockouts)
    assert "ada@example.com" not in out and "203.0.113.5" not in out
    seq = lockouts[0]["seq"]

    code, out, err = await run(capsys, "--env-file", str(env), "lockout", "reset", str(seq), "--operator", "dpo-1")
    assert code == 0, err
    assert (await demo.client.post("/auth/login", json=right)).status_code == 200
    code, out, _ = await run(capsys, "--env-file", str(env), "lockout", "list", "--json")
    assert seq not in [lock["seq"] for lock in orjson.loads(out)["lockouts"]]
    code, _, err = await run(capsys, "--env-file", str(env), "lockout", "reset", "999999")
    assert code == 1 and "no lockout finding" in err


async def test_reset_without_shared_counters_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write_env_file(tmp_path / "demo-data")
    code, _, err = await run(capsys, "--env-file", str(env), "lockout", "reset", "1")
    assert code == 1 and "PRIVACY_REDIS_URL" in err and "Traceback" not in err, err
