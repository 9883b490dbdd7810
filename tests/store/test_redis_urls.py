"""PRIVACY_REDIS_URL beyond one server: a Sentinel-managed master and a Redis Cluster, both real
servers on loopback, carrying the login ledger (Lua on one slot) and the bus (Streams)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from privacy_middleware.audit import LoginGuard, MemoryCounters
from privacy_middleware.audit.attempts_redis import RedisLedger
from privacy_middleware.errors import ConfigError
from privacy_middleware.store.bus import RedisBus
from privacy_middleware.store.redis_client import redis_from_url
from support.ports import free_port
from support.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    master = RedisServer(tmp_path)
    master.start()
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nsentinel monitor shop-cache 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds shop-cache 5000\n"
    )
    binary = shutil.which("redis-server")
    assert binary
    sentinel = subprocess.Popen([binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.execute_command("SENTINEL", "get-master-addr-by-name", "shop-cache"):
                    break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "sentinel did not start"
            time.sleep(0.05)
        client.close()
        yield f"redis+sentinel://127.0.0.1:{port}/shop-cache/0"
    finally:
        sentinel.kill()
        sentinel.wait()
        master.stop()


@pytest.fixture
def cluster_url(tmp_path: Path) -> Iterator[str]:
    node = RedisServer(tmp_path, "--cluster-enabled", "yes", "--cluster-config-file", str(tmp_path / "nodes.conf"))
    node.start()
    try:
        client = redis.Redis(port=node.port)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # a one-node cluster holding every slot
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "cluster not ready"
            time.sleep(0.05)
        client.close()
        yield f"redis+cluster://127.0.0.1:{node.port}"
    finally:
        node.stop()


async def exercise(url: str) -> None:
    client = redis_from_url(url, socket_connect_timeout=2.0)
    bus = RedisBus(url, prefix="shop:", poll_timeout=0.2)
    got: list[str] = []

    async def handler(payload: str) -> None:
        got.append(payload)

    bus.subscribe("consent.changed", handler)
    bus.subscribe("keys.erased", handler)
    try:
        guard = LoginGuard(MemoryCounters(), key=b"k" * 32, ledger=RedisLedger(client, prefix="shop:"))
        results = await asyncio.gather(*(guard.reserve("ada@example.com", "203.0.113.5") for _ in range(15)))
        assert sum(r.granted for r in results) == 10
        await bus.start()
        await asyncio.sleep(0.3)
        await bus.publish("consent.changed", "a")
        await bus.publish("keys.erased", "b")
        deadline = time.monotonic() + 5
        while sorted(got) != ["a", "b"]:
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.02)
    finally:
        await bus.close()
        await client.aclose()


async def test_a_sentinel_url_reaches_the_master(sentinel_url: str) -> None:
    await exercise(sentinel_url)


async def test_a_cluster_url_keeps_each_script_and_read_on_one_slot(cluster_url: str) -> None:
    await exercise(cluster_url)


def test_a_sentinel_url_without_a_service_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError):
        redis_from_url("redis+sentinel://127.0.0.1:26379")
