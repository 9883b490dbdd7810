"""Reverse-proxy mode against a direct call to the same upstream, both under uvicorn on loopback.

The upstream is a raw ASGI shop whose JSON routes cost UPSTREAM_COST_MS of CPU each (a busy loop:
a real shop renders, queries and serialises); it reports its own CPU cost per request, measured in
its process, at `/__cost`. The proxy is `PrivacyMiddleware(ProxyApp(upstream))` with a one-route
policy (`GET /orders/{id}` filtered for the anonymous caller). Servers run uvicorn with httptools
and uvloop when installed (the `bench` extra), else h11 and asyncio; the flags are printed.

Cores: with two or more CPUs the proxy gets CPU 0 to itself, the upstream and the load generator
share CPU 1 (wrk spends little CPU; the upstream is the cost being proxied). Load generator: wrk
(Debian package `wrk`) when installed, else an httpx loop that may itself be the bottleneck (said
in the output). Each figure is requests/s over a fixed duration after a warm-up; the ratio proxied /
direct in the same run is the figure to read. Every scenario is checked first: status 200, the
direct body holds the e-mail, the proxied planned body does not.

Run: .venv/bin/python bench/bench_proxy.py [--smoke]
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from common import Row, Table, expect, is_smoke

CONCURRENCY = 16
DURATION = 8
WARMUP = 2
DOWNLOADS = 40
UPSTREAM_COST_MS = float(os.environ.get("BENCH_UPSTREAM_COST_MS", "1.0"))


def server_flags() -> list[str]:
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401

        fast = ["--http", "httptools", "--loop", "uvloop"]
    except ImportError:
        fast = ["--http", "h11", "--loop", "asyncio"]
    return [*fast, "--workers", "1", "--no-access-log", "--log-level", "warning", "--lifespan", "on"]


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

_served = {"requests": 0, "cpu": 0.0}


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


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
    if scope["path"] == "/__cost":
        body = orjson.dumps(_served)
        _served.update(requests=0, cpu=0.0)
    else:
        cpu = time.process_time()
        _burn(UPSTREAM_COST_MS / 1000)
        body = ORDER
        _served["requests"] += 1
        _served["cpu"] += time.process_time() - cpu
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def proxy_app() -> Any:
    """uvicorn factory for the proxy process (settings from PRIVACY_*, upstream from the env)."""
    from privacy_middleware.serve import create_app

    return create_app()


def proxy_app_with(engine: str) -> Any:
    from privacy_middleware.serve import UPSTREAM_ENV, build_proxy_app

    return build_proxy_app(os.environ[UPSTREAM_ENV], timeout=30.0, engine=engine)


def proxy_app_httpx() -> Any:
    """The proxy with the httpx upstream client (the choice before aiohttp), for the comparison."""
    return proxy_app_with("httpx")


def proxy_app_aiohttp() -> Any:
    """The proxy with the aiohttp upstream client (what `serve` runs when aiohttp is installed)."""
    return proxy_app_with("aiohttp")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (Linux /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(process: subprocess.Popen[bytes]) -> int:
    """The Python process under `taskset` (taskset execs it, so the pid is the same)."""
    return process.pid


# --- orchestration ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cores() -> tuple[str, str]:
    """(proxy, upstream + load generator) CPU lists for taskset."""
    count = os.cpu_count() or 1
    return ("0", "1") if count >= 2 else ("0", "0")


def start(target: str, port: int, env: dict[str, str], cpu: str, factory: bool = False) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port), *server_flags()]
    if factory:
        command.append("--factory")
    if shutil.which("taskset"):
        command = ["taskset", "-c", cpu, *command]
    return subprocess.Popen(command, env=env, cwd=Path(__file__).parent)


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def wrk(url: str, seconds: int, cpu: str) -> tuple[float, int]:
    """Requests/s from wrk (one thread, CONCURRENCY connections), pinned beside the upstream."""
    command = ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{seconds}s", url]
    if shutil.which("taskset"):
        command = ["taskset", "-c", cpu, *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    expect("Non-2xx" not in out and "Socket errors" not in out, f"wrk saw errors on {url}: {out}")
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    count = re.search(r"([0-9]+) requests in", out)
    expect(found is not None and count is not None, f"wrk printed no rate: {out}")
    assert found is not None and count is not None
    return float(found.group(1)), int(count.group(1))


async def httpx_rate(url: str, seconds: float) -> tuple[float, int]:
    """Fallback load generator (may be the bottleneck itself): CONCURRENCY keep-alive loops."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    done = 0
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() - started < seconds:
                response = await client.get(url)
                expect(response.status_code == 200, f"{url} answered {response.status_code}")
                done += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - started), done


def rate(url: str, seconds: int, cpu: str, server: int | None = None) -> tuple[float, float]:
    """(requests/s, CPU seconds per request of `server`'s process, 0 when none is named)."""
    if shutil.which("wrk"):
        wrk(url, WARMUP, cpu)
        before = cpu_seconds(server) if server else 0.0
        rps, count = wrk(url, seconds, cpu)
    else:
        asyncio.run(httpx_rate(url, WARMUP))
        before = cpu_seconds(server) if server else 0.0
        rps, count = asyncio.run(httpx_rate(url, seconds))
    used = (cpu_seconds(server) - before) if server else 0.0
    return rps, used / max(1, count)


def download_rate(url: str, count: int) -> float:
    """MiB/s for sequential 1 MiB downloads."""
    with httpx.Client(timeout=30) as client:
        started = time.perf_counter()
        size = 0
        for _ in range(count):
            with client.stream("GET", url) as response:
                for chunk in response.iter_raw():
                    size += len(chunk)
        expect(size == count * len(DOWNLOAD_CHUNK) * DOWNLOAD_CHUNKS, "a download was cut short")
        return size / (time.perf_counter() - started) / 2**20


def check_paths(direct: str, proxied: str) -> None:
    """The bench measures what it names: a filtered body through the proxy, the full one direct."""
    full = httpx.get(direct + "/orders/1")
    expect(full.status_code == 200 and b"ada@example.com" in full.content, "direct order lacks the e-mail")
    filtered = httpx.get(proxied + "/orders/1")
    expect(filtered.status_code == 200, f"proxied order answered {filtered.status_code}: {filtered.text[:200]}")
    expect(b"ada@example.com" not in filtered.content, "the proxy did not filter the order")
    expect(orjson.loads(filtered.content)["id"] == "ord_1", "the proxied order lost its id")
    passed = httpx.get(proxied + "/products")
    expect(passed.status_code == 200 and passed.content == full.content, "pass-through changed the body")


def upstream_cost(direct: str) -> float:
    """The upstream's own CPU seconds per request since the last call (measured in its process)."""
    served = httpx.get(direct + "/__cost").json()
    return float(served["cpu"]) / max(1, int(served["requests"]))


def main(smoke: bool = False) -> list[Row]:
    table = Table()
    proxy_cpu, upstream_cpu = cores()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.toml"
        policy.write_text(POLICY)
        up_port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
            "BENCH_UPSTREAM_COST_MS": str(UPSTREAM_COST_MS),
        }
        proxy_env = {
            **env,
            "PRIVACY_PROXY_UPSTREAM": f"http://127.0.0.1:{up_port}",
            "PRIVACY_POLICY_FILE": str(policy),
            "PRIVACY_DATA_DIR": tmp,
            "PRIVACY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/privacy.db",
            "PRIVACY_JWT__SECRET": "bench-secret-bench-secret-bench-secret",
            "PRIVACY_JWT__ALGORITHMS": "HS256",
            "PRIVACY_PSEUDONYM_SECRET": "bench-pseudonym-secret-0123456789",
        }
        engines = ("aiohttp", "httpx")
        ports = {engine: free_port() for engine in engines}
        servers = [start("bench_proxy:upstream_app", up_port, env, upstream_cpu)]
        for engine in engines:
            data = Path(tmp) / engine
            data.mkdir()
            own = {
                **proxy_env,
                "PRIVACY_DATA_DIR": str(data),
                "PRIVACY_DATABASE_URL": f"sqlite+aiosqlite:///{data}/p.db",
            }
            servers.append(start(f"bench_proxy:proxy_app_{engine}", ports[engine], own, proxy_cpu, factory=True))
        try:
            direct = f"http://127.0.0.1:{up_port}"
            urls = {engine: f"http://127.0.0.1:{ports[engine]}" for engine in engines}
            wait_ready(direct + "/__cost")
            for engine in engines:
                wait_ready(urls[engine] + "/privacy/health")
                check_paths(direct, urls[engine])
            proxied = urls["aiohttp"]
            generator = "wrk" if shutil.which("wrk") else "httpx loop (may be the bottleneck)"
            print(
                f"bench_proxy: uvicorn {' '.join(server_flags())}; load: {generator}, {CONCURRENCY} connections,"
                f" {DURATION} s per scenario after {WARMUP} s; proxy on CPU {proxy_cpu}, upstream and load"
                f" generator on CPU {upstream_cpu}; upstream burns {UPSTREAM_COST_MS:g} ms per JSON request;"
                f" load average {os.getloadavg()[0]:.1f}"
            )
            if smoke:
                return table.rows
            upstream_cost(direct)
            direct_rps, _ = rate(direct + "/orders/1", DURATION, upstream_cpu)
            cost = upstream_cost(direct)
            print(f"  upstream's own CPU cost per request (its process): {cost * 1e3:.2f} ms")
            table.add(
                Row("proxy", "direct GET /orders/1 (req/s)", direct_rps, direct_rps, "direct", None, "req/s", True)
            )
            cpu: dict[tuple[str, str], float] = {}
            for engine, process in zip(engines, servers[1:], strict=True):
                target = 0.8 if engine == "aiohttp" else None  # what `serve` runs carries the target
                for route, name in (("/orders/1", "GET /orders/1, filtered"), ("/products", "GET /products, no plan")):
                    rps, cpu[engine, route] = rate(urls[engine] + route, DURATION, upstream_cpu, server_pid(process))
                    label = f"proxied {name}, {engine} (req/s)"
                    table.add(Row("proxy", label, rps, direct_rps, "direct", target, "req/s", True))
            for route in ("/orders/1", "/products"):
                table.add(
                    Row(
                        "proxy",
                        f"proxy CPU per request {route}, aiohttp client",
                        cpu["aiohttp", route],
                        cpu["httpx", route],
                        "httpx client",
                    )
                )
            download_rate(direct + "/download", 5)
            base = download_rate(direct + "/download", DOWNLOADS)
            through = download_rate(proxied + "/download", DOWNLOADS)
            table.add(
                Row("proxy", "proxied 1 MiB download, aiohttp (MiB/s)", through, base, "direct", None, "MiB/s", True)
            )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(10)
    return table.rows


if __name__ == "__main__":
    main(is_smoke())
