"""dsar list/show, audit search/public-key on the demo's data, through the env file the demo writes."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import orjson

from privacy_middleware.demo.run import write_env_file
from privacy_middleware.store import Database
from privacy_middleware.store.rights import RightsRepository

from .test_cli_basics import one_line_error


def submit_requests(env: Path) -> list[str]:
    from dotenv import dotenv_values

    url = str(dotenv_values(env)["PRIVACY_DATABASE_URL"])

    async def run() -> list[str]:
        db = Database(url)
        try:
            repo = RightsRepository(db)
            now = dt.datetime.now(dt.UTC)
            late, _ = await repo.submit(
                kind="access", subject="cust-1", principal="cust-1", due_at=now - dt.timedelta(days=2)
            )
            fresh, _ = await repo.submit(
                kind="erasure", subject="cust-2", principal="cust-2", due_at=now + dt.timedelta(days=30)
            )
            return [late.id, fresh.id]
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_demo_env_file_runs_every_store_command(cli: Any, tmp_path: Path) -> None:
    env = write_env_file(tmp_path / "demo-data")
    assert cli("--env-file", str(env), "config", "check").code == 0
    ran = cli("--env-file", str(env), "dsar", "list")
    assert ran.code == 1 and "db upgrade" in one_line_error(ran.err)
    assert cli("--env-file", str(env), "db", "upgrade").code == 0
    late, fresh = submit_requests(env)

    listing = orjson.loads(cli("--env-file", str(env), "dsar", "list", "--json").out)
    assert [r["id"] for r in listing["requests"]] == [late, fresh]  # overdue first
    overdue = cli("dsar", "list", "--overdue", "--env-file", str(env))
    assert overdue.code == 0 and late in overdue.out and fresh not in overdue.out and "OVERDUE" in overdue.out

    shown = orjson.loads(cli("--env-file", str(env), "dsar", "show", late, "--json").out)
    assert shown["id"] == late and shown["overdue"] is True and shown["type"] == "access"
    missing = cli("--env-file", str(env), "dsar", "show", "no-such-id")
    assert missing.code == 1 and "no subject request" in one_line_error(missing.err)

    assert "no signing key" in one_line_error(cli("--env-file", str(env), "audit", "public-key").err)
    assert orjson.loads(cli("--env-file", str(env), "audit", "search", "--json").out)["events"] == []
    bad = cli("--env-file", str(env), "audit", "search", "--since", "yesterday")
    assert bad.code == 2


def test_audit_search_and_public_key_after_the_middleware_ran(cli: Any, tmp_path: Path, asgi_lifespan: Any) -> None:
    from privacy_middleware.demo.run import build_demo

    data = tmp_path / "demo-data"
    env = write_env_file(data)

    async def serve_once() -> None:
        import httpx

        app, _ = build_demo(data, audit={"retention_interval_seconds": 0})
        async with (
            asgi_lifespan(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as client,
        ):
            response = await client.post(
                "/auth/login", json={"email": "nobody@example.com", "password": "wrong password"}
            )
            assert response.status_code == 401

    asyncio.run(serve_once())
    key = cli("--env-file", str(env), "audit", "public-key")
    assert key.code == 0 and key.out.startswith("-----BEGIN PUBLIC KEY-----")
    found = orjson.loads(cli("--env-file", str(env), "audit", "search", "--kind", "authentication.*", "--json").out)
    assert found["events"] and all(e["kind"].startswith("authentication.") for e in found["events"])
    assert "nobody@example.com" not in orjson.dumps(found).decode()
