"""Reverse-proxy mode against a direct call to the same upstream, both under uvicorn on loopback.

Servers (each its own process): uvicorn `--http h11 --loop asyncio --workers 1 --no-access-log
--log-level warning --lifespan on` (httptools/uvloop are not dependencies); the upstream is a
raw ASGI shop answering a 1 KB JSON order and a 1 MiB download. The proxy is
`PrivacyMiddleware(ProxyApp(upstream))` with a one-route policy (`GET /orders/{id}` filtered for
the anonymous caller). Servers are pinned to CPU 0 and the load generator to CPU 1 when the
machine has two or more cores.

Load generator: an httpx-based bounded async loop (keep-alive pool, CONCURRENCY in flight), a
fixed number of requests per scenario after a warm-up, stopped early at TIME_CAP seconds. A Python
client saturates before uvicorn does on small responses, so absolute rps are the client's ceiling
as much as the server's; the ratios between scenarios in the same run are the figure to read.

Run: .venv/bin/python bench/bench_proxy.py
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

CONCURRENCY = 16
REQUESTS = 2000
WARMUP = 200
DOWNLOADS = 40
TIME_CAP = 30.0
SERVER_FLAGS = [
    "--http",
    "h11",
    "--loop",
    "asyncio",
    "--workers",
    "1",
    "--no-access-log",
    "--log-level",
    "warning",
    "--lifespan",
    "on",
]

ORDER = orjson.dumps(
    {
        "id": "ord_1",
        "customer_id": "cus_1",
        "status": "paid",
        "total": 17.0,
        "currency": "EUR",
        "items": [{"sku": f"TEA-{i:03d}", "qty": 1, "price": 8.5} for i in range(12)],
        "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
        "shipping_address": {
            "name": "Ada Lovelace",
            "street": "1 Tea Lane",
            "city": "Leeds",
            "postal_code": "LS1 1AA",
            "country": "GB",
            "phone": "+44 113 496 0000",
        },
    }
)
DOWNLOAD_CHUNK = b"x" * 65536
DOWNLOAD_CHUNKS = 16  # 1 MiB

POLICY = """
[policy]
name = "bench"
version = "1"
effective_date = 2026-01-01

[categories]
"user.name" = {}
"user.contact.email" = {}
"user.contact.phone" = {}
"user.contact.address.delivery" = {}

[purposes.order_fulfilment]
legal_basis = "contract"

[[routes]]
method = "GET"
path = "/orders/{order_id}"
purpose = "order_fulfilment"

[routes.response]
personal_objects = ["customer", "shipping_address"]
fields = [
  { select = "customer.email", category = "user.contact.email" },
  { select = "customer.name", category = "user.name" },
  { select = "shipping_address.phone", category = "user.contact.phone" },
  { select = "shipping_address.street", category = "user.contact.address.delivery" },
]
"""


# --- the servers (run in child processes) ---------------------------------------------------------


async def upstream_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/download":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(len(DOWNLOAD_CHUNK) * DOWNLOAD_CHUNKS).encode()),
                ],
            }
        )
        for i in range(DOWNLOAD_CHUNKS):
            await send({"type": "http.response.body", "body": DOWNLOAD_CHUNK, "more_body": i < DOWNLOAD_CHUNKS - 1})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(ORDER)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": ORDER})


def proxy_app() -> Any:
    """uvicorn factory for the proxy process (settings from PRIVACY_*, upstream from the env)."""
    from privacy_middleware.serve import create_app

    return create_app()


# --- orchestration ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


def start(target: str, port: int, env: dict[str, str], factory: bool = False) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *SERVER_FLAGS,
    ]
    if factory:
        command.append("--factory")
    return subprocess.Popen(command, env=env, cwd=Path(__file__).parent, preexec_fn=lambda: pin(0))


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def load(url: str, count: int) -> tuple[float, list[float]]:
    """Requests per second and per-request latencies for `count` GETs of `url`."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        remaining = count
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and time.perf_counter() - started < TIME_CAP:
                remaining -= 1
                t0 = time.perf_counter()
                response = await client.get(url)
                response.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


async def download_rate(url: str) -> float:
    """MiB/s for sequential 1 MiB downloads."""
    async with httpx.AsyncClient(timeout=30) as client:
        started = time.perf_counter()
        size = 0
        for _ in range(DOWNLOADS):
            async with client.stream("GET", url) as response:
                async for chunk in response.aiter_raw():
                    size += len(chunk)
        return size / (time.perf_counter() - started) / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def scenario(name: str, url: str) -> tuple[str, float, float, float]:
    await load(url, WARMUP)
    rps, latencies = await load(url, REQUESTS)
    return name, rps, statistics.median(latencies), percentile(latencies, 0.99)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.toml"
        policy.write_text(POLICY)
        up_port, proxy_port = free_port(), free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        proxy_env = {
            **env,
            "PRIVACY_PROXY_UPSTREAM": f"http://127.0.0.1:{up_port}",
            "PRIVACY_POLICY_FILE": str(policy),
            "PRIVACY_DATA_DIR": tmp,
            "PRIVACY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/privacy.db",
            "PRIVACY_JWT__SECRET": "bench-secret-bench-secret-bench-secret",
            "PRIVACY_JWT__ALGORITHMS": "HS256",
            "PRIVACY_PSEUDONYM_SECRET": "bench",
        }
        servers = [
            start("bench_proxy:upstream_app", up_port, env),
            start("bench_proxy:proxy_app", proxy_port, proxy_env, factory=True),
        ]
        try:
            direct, proxied = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{proxy_port}"
            wait_ready(direct + "/products")
            wait_ready(proxied + "/privacy/health")
            pin(1)
            results = asyncio.run(run_all(direct, proxied))
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(10)
    print_results(*results)


async def run_all(direct: str, proxied: str) -> tuple[list[tuple[str, float, float, float]], list[tuple[str, float]]]:
    rows = [
        await scenario("direct   GET /products (1 KB JSON)", direct + "/products"),
        await scenario("proxied  GET /products (no plan: streamed)", proxied + "/products"),
        await scenario("proxied  GET /orders/1 (planned: filtered)", proxied + "/orders/1"),
    ]
    await download_rate(direct + "/download")  # warm-up
    rates = [
        ("direct   1 MiB download", await download_rate(direct + "/download")),
        ("proxied  1 MiB download", await download_rate(proxied + "/download")),
    ]
    return rows, rates


def print_results(rows: list[tuple[str, float, float, float]], rates: list[tuple[str, float]]) -> None:
    print(
        f"uvicorn {' '.join(SERVER_FLAGS)}; httpx load loop, concurrency {CONCURRENCY}, "
        f"{REQUESTS} requests per scenario after {WARMUP} warm-up; servers on CPU 0, client on CPU 1"
    )
    base_rps, base_p50 = rows[0][1], rows[0][2]
    print(f"{'scenario':<46} {'req/s':>8} {'ratio':>7} {'p50 ms':>8} {'ratio':>7} {'p99 ms':>8}")
    for name, rps, p50, p99 in rows:
        ratio, latency_ratio = rps / base_rps, p50 / base_p50
        print(f"{name:<46} {rps:8.0f} {ratio:6.2f}x {p50 * 1e3:8.2f} {latency_ratio:6.2f}x {p99 * 1e3:8.2f}")
    base_rate = rates[0][1]
    for name, rate in rates:
        print(f"{name:<46} {rate:8.1f} MiB/s {rate / base_rate:6.2f}x")


if __name__ == "__main__":
    main()
