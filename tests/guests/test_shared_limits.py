"""Guest code limits hold across instances: two middleware instances on one store (Redis, or the
database when there is no Redis) count the same sends and the same checks."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

from .test_checkout_and_rights import POLICY_TOML, GuestShop, Mailbox, smtp  # noqa: F401  (the SMTP fixture)

pytestmark = pytest.mark.anyio


def instance(database_url: str, data_dir: Path, smtp_port: int, redis: dict[str, str]) -> PrivacyMiddleware:
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,  # the same keys and guest secret, as every instance of one deployment has
        smtp={"host": "127.0.0.1", "port": smtp_port, "timeout_seconds": 5},
        outbound={"allow": ["127.0.0.1/32"]},  # the test mail server on loopback
        guests={"codes_per_email_per_hour": 3, "codes_per_ip_per_hour": 50, "verifications_per_ip_per_hour": 4},
        audit={"retention_interval_seconds": 0},
        **redis,
    )
    runtime = Runtime(settings, policy=validate_policy(tomllib.loads(POLICY_TOML)))
    return PrivacyMiddleware(GuestShop().app(), runtime=runtime)


@pytest.fixture(params=["store", "redis"])
async def two_instances(
    request: pytest.FixtureRequest,
    database_url: str,
    tmp_path: Path,
    smtp: tuple[Mailbox, int],  # noqa: F811
    redis_prefix: str,
    asgi_lifespan: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Mailbox]]:
    from conftest import REDIS_TEST_URL

    redis = {"redis_url": REDIS_TEST_URL, "redis_prefix": redis_prefix} if request.param == "redis" else {}
    apps = [instance(database_url, tmp_path, smtp[1], redis) for _ in range(2)]
    async with AsyncExitStack() as stack:
        clients = []
        for app in apps:
            await stack.enter_async_context(asgi_lifespan(app))
            transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
            clients.append(
                await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://shop"))
            )
        yield clients[0], clients[1], smtp[0]


async def test_code_sends_are_counted_once_for_every_instance(two_instances: Any) -> None:
    first, second, mailbox = two_instances
    for client in (first, second, first):
        assert (await client.post("/privacy/guest/code", json={"email": "grace@example.com"})).status_code == 202
    for client in (second, first):
        refused = await client.post("/privacy/guest/code", json={"email": "Grace@Example.com"})
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited", refused.text
    assert len(mailbox.messages) == 3


async def test_code_checks_are_counted_once_for_every_instance(two_instances: Any) -> None:
    first, second, mailbox = two_instances
    assert (await first.post("/privacy/guest/code", json={"email": "grace@example.com"})).status_code == 202
    code = mailbox.code()
    for client in (first, second, first):
        wrong = await client.post("/privacy/guest/session", json={"email": "grace@example.com", "code": "000000x"})
        assert wrong.status_code == 400, wrong.text
    # the fourth check of this client is the last one the hour allows, on whichever instance
    right = await second.post("/privacy/guest/session", json={"email": "grace@example.com", "code": code})
    assert right.status_code == 200 and right.json()["token"].startswith("pmg."), right.text
    refused = await first.post("/privacy/guest/session", json={"email": "grace@example.com", "code": code})
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited", refused.text
