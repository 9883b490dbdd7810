import os
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock
from redis.asyncio import Redis

from privacy_middleware.audit import (
    AuditEvent,
    Lockout,
    LoginGuard,
    LoginLimits,
    MemoryCounters,
    RedisCounters,
)
from privacy_middleware.audit.counters import CounterBackend

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("PRIVACY_TEST_REDIS", "redis://127.0.0.1:6379/0")
KEY = b"k" * 32


class Sink:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def counters(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[CounterBackend]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    client = Redis.from_url(REDIS_URL)
    try:
        yield RedisCounters(client, prefix=redis_prefix)
    finally:
        await client.aclose()


async def test_eleventh_attempt_for_one_account_and_ip_is_refused(counters: CounterBackend) -> None:
    sink = Sink()
    guard = LoginGuard(counters, key=KEY, sink=sink)
    for _ in range(10):
        assert await guard.check("alice@shop.test", "203.0.113.9") is None
        await guard.record_failure("alice@shop.test", "203.0.113.9")
    lock = await guard.check("Alice@Shop.test ", "203.0.113.9")
    assert isinstance(lock, Lockout) and lock.reason == "account_ip"
    assert 29 * 86_400 < lock.retry_after <= 30 * 86_400
    assert await guard.check("alice@shop.test", "198.51.100.1") is None  # the owner elsewhere still gets in
    assert sink.kinds() == ["detection_finding.lockout"]
    finding = sink.events[0]
    body = orjson.dumps(finding.document())
    assert b"alice" not in body and b"203.0.113.9" not in body
    assert finding.personal == {"ip": "203.0.113.9", "username": "alice@shop.test"}  # sealed by the log


async def test_success_before_the_threshold_resets_the_pair(counters: CounterBackend) -> None:
    guard = LoginGuard(counters, key=KEY)
    for _ in range(9):
        await guard.record_failure("bob", "192.0.2.1")
    await guard.record_success("bob", "192.0.2.1", "dev-1")
    for _ in range(9):
        await guard.record_failure("bob", "192.0.2.1")
    assert await guard.check("bob", "192.0.2.1") is None


async def test_distributed_guessing_gets_a_growing_capped_temporary_wait(counters: CounterBackend) -> None:
    limits = LoginLimits(account_failures=3, account_wait_increment=60, account_max_wait=150)
    if isinstance(counters, MemoryCounters):
        counters = MemoryCounters(clock=lambda: 1_000.0)  # time stands still: the waits are exact
    guard = LoginGuard(counters, key=KEY, limits=limits)
    waits = []
    for n in range(5):
        lock = await guard.record_failure("carol", f"192.0.2.{n + 1}")
        waits.append(lock.retry_after if lock is not None and lock.reason == "account" else None)
    assert waits[:2] == [None, None]
    assert 55 <= waits[2] <= 60 and 115 <= waits[3] <= 120 and 145 <= waits[4] <= 150


async def test_password_spraying_from_one_source_is_throttled(counters: CounterBackend) -> None:
    sink = Sink()
    guard = LoginGuard(counters, key=KEY, sink=sink)
    for n in range(10):
        await guard.record_failure(f"user{n}", "198.51.100.7")
    assert await guard.check("someone-else", "198.51.100.7") is None  # 10 distinct: not yet
    await guard.record_failure("user10", "198.51.100.7")
    lock = await guard.check("someone-else", "198.51.100.7")
    assert lock is not None and lock.reason == "password_spraying" and 0 < lock.retry_after <= 1800
    assert await guard.check("someone-else", "198.51.100.8") is None
    assert sink.kinds().count("detection_finding.password_spraying") == 1


async def test_high_velocity_ip_is_throttled_and_ipv4_mapped_ipv6_counts_as_the_same_ip(
    counters: CounterBackend,
) -> None:
    guard = LoginGuard(counters, key=KEY, limits=LoginLimits(ip_failures=4, spray_accounts=100))
    for n in range(3):
        await guard.record_failure(f"u{n}", "192.0.2.50")
    for n in range(2):
        await guard.record_failure(f"v{n}", "::ffff:192.0.2.50")
    lock = await guard.check("anyone", "192.0.2.50")
    assert lock is not None and lock.reason == "ip"


async def test_empty_username_never_locks_everyone(counters: CounterBackend) -> None:
    guard = LoginGuard(counters, key=KEY)
    for _ in range(40):
        await guard.record_failure("", "192.0.2.60")
    assert await guard.check("dave", "192.0.2.61") is None
    assert await guard.check("", "192.0.2.61") is None


@pytest.mark.redis
async def test_redis_counters_are_shared_between_instances_and_keys_are_pseudonymous(
    redis_prefix: str,
) -> None:
    first, second = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    try:
        a = LoginGuard(RedisCounters(first, prefix=redis_prefix), key=KEY)
        b = LoginGuard(RedisCounters(second, prefix=redis_prefix), key=KEY)
        for n in range(10):
            await (a if n % 2 else b).record_failure("erin@shop.test", "203.0.113.20")
        lock = await b.check("erin@shop.test", "203.0.113.20")
        assert lock is not None and lock.reason == "account_ip"
        keys = [k async for k in first.scan_iter(match=f"{redis_prefix}*")]
        assert keys
        assert not any(b"erin" in k or b"203.0.113" in k for k in keys)
        other = LoginGuard(RedisCounters(second, prefix=redis_prefix), key=b"x" * 32)
        assert await other.check("erin@shop.test", "203.0.113.20") is None  # a different key sees nothing
    finally:
        await first.aclose()
        await second.aclose()


async def test_memory_lockout_expires_after_its_window() -> None:
    now = [1000.0]
    guard = LoginGuard(MemoryCounters(clock=lambda: now[0]), key=KEY, limits=LoginLimits(pair_block_seconds=600))
    for _ in range(10):
        await guard.record_failure("frank", "192.0.2.70")
    assert await guard.check("frank", "192.0.2.70") is not None
    now[0] += 599
    assert await guard.check("frank", "192.0.2.70") is not None
    now[0] += 2
    assert await guard.check("frank", "192.0.2.70") is None


async def test_new_device_and_network_raise_a_finding_and_call_the_webhook(
    counters: CounterBackend, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="POST", url="https://hooks.shop.test/login", status_code=204)
    sink = Sink()
    async with httpx.AsyncClient() as http:
        guard = LoginGuard(counters, key=KEY, sink=sink, webhook_url="https://hooks.shop.test/login", http=http)
        first = await guard.record_success("gina", "192.0.2.10", "laptop", subject="cust_7")
        again = await guard.record_success("gina", "192.0.2.11", "laptop", subject="cust_7")
        assert not first.suspicious and not again.suspicious  # same /24, same device
        signals = await guard.record_success("gina", "2001:db8:aa::1", "phone", subject="cust_7")
    assert (signals.new_device, signals.new_network) == (True, True)
    assert sink.kinds() == ["detection_finding.suspicious_login"]
    requests = httpx_mock.get_requests()
    assert len(requests) == 1
    assert (requests[0].method, str(requests[0].url)) == ("POST", "https://hooks.shop.test/login")
    payload = orjson.loads(requests[0].content)
    assert payload.pop("time").endswith("Z")
    assert payload == {
        "type": "login.suspicious",
        "signals": ["new_device", "new_network"],
        "subject": "cust_7",
        "network": "2001:db8:aa::/48",
    }
    assert b"gina" not in requests[0].content and b"2001:db8:aa::1" not in requests[0].content


async def test_failing_webhook_never_breaks_the_login(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="POST", url="https://hooks.shop.test/login", status_code=500)
    async with httpx.AsyncClient() as http:
        guard = LoginGuard(MemoryCounters(), key=KEY, webhook_url="https://hooks.shop.test/login", http=http)
        await guard.record_success("hank", "192.0.2.10", "a")
        signals = await guard.record_success("hank", "192.0.2.10", "b")
    assert signals.new_device and not signals.new_network
    assert len(httpx_mock.get_requests()) == 1


def test_limits_reject_nonsense_and_guard_requires_a_real_key() -> None:
    with pytest.raises(ValueError):
        LoginLimits(pair_failures=0)
    with pytest.raises(ValueError):
        LoginGuard(MemoryCounters(), key=b"short")
    with pytest.raises(ValueError):
        LoginGuard(MemoryCounters(), key=KEY, webhook_url="https://x.test/")
