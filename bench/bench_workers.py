"""Throughput of `privacy-middleware serve --workers N` for N = 1, 2, 4, as ratios against 1 worker.

Two routes through the proxy in front of one cheap upstream (a raw ASGI shop under uvicorn): a
pass-through (`GET /products`, no plan) and the demo policy's checkout (`POST /checkout`, 8 fields
protected, the card encrypted, the CVV stripped). Before each measurement the path is checked: the
pass-through body arrives unchanged, the checkout answers 201 and the shop received ciphertext
(`pe1.`) and no CVV; after it, the shop's last checkout body is checked again and wrk must report
no non-2xx answer and no socket error. Load: wrk (Debian package `wrk`; 2 threads, 16 keep-alive
connections, 2 s warm-up then DURATION s), else several httpx client processes (said in the output;
they may be the bottleneck). All worker counts run in one invocation, so the ratios share the
machine's state; on a 2-core machine 2 workers is the most that can help and 4 shows the cost of
oversubscription. Nothing is pinned: the workers, the upstream and the load generator share the cores.

Run: .venv/bin/python bench/bench_workers.py [--smoke]      (BENCH_WORKERS_SECONDS=8 by default)
"""

from __future__ import annotations

import contextlib
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
import jwt
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_routes import checkout_body
from common import Row, Table, expect, is_smoke

WORKERS = (1, 2, 4)
CONNECTIONS = 16
THREADS = 2
DURATION = int(os.environ.get("BENCH_WORKERS_SECONDS", "8"))
WARMUP = 2
SECRET = "bench-workers-secret-" * 3
CARD = "4242424242424242"
CHECKOUT = checkout_body()  # the routes bench's 5 KB demo checkout (its card is CARD)
PRODUCTS = orjson.dumps({"products": [{"sku": f"TEA-{i:03d}", "name": "Sencha", "price": 8.5} for i in range(20)]})
ORDER = b'{"id":"ord_1","status":"paid"}'


# --- the upstream (a child process) ---------------------------------------------------------------

_last: dict[str, bytes] = {"checkout": b"{}"}


async def upstream_app(scope: Any, receive: Any, send: Any) -> None:
    """A cheap shop: the proxy, not the shop, is what the worker count should scale."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    status, body = 200, PRODUCTS
    if scope["path"] == "/checkout":
        _last["checkout"] = b"".join(chunks)
        status, body = 201, ORDER
    elif scope["path"] == "/__last_checkout":
        body = _last["checkout"]
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- orchestration ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_flags() -> list[str]:
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401

        return ["--http", "httptools", "--loop", "uvloop"]
    except ImportError:
        return ["--http", "h11", "--loop", "asyncio"]


def token() -> str:
    now = int(time.time())
    return jwt.encode({"sub": "cus_0001", "iat": now, "exp": now + 86400}, SECRET, algorithm="HS256")


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        expect(process.poll() is None, f"the server for {url} exited")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


def worker_pids(pid: int) -> list[int]:
    """Worker processes under the `serve` supervisor (Linux /proc; none when it serves in-process)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):  # exited meanwhile
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds these processes have used (Linux /proc/PID/stat)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def check_checkout(proxy: str, upstream: str, auth: str) -> None:
    """The bench measures what it names: 201 through the proxy, ciphertext and no CVV at the shop."""
    headers = {"content-type": "application/json", "authorization": auth}
    answer = httpx.post(proxy + "/checkout", content=CHECKOUT, headers=headers, timeout=30)
    expect(answer.status_code == 201, f"checkout answered {answer.status_code}: {answer.text[:200]}")
    check_shop(upstream)


def check_shop(upstream: str) -> None:
    stored = httpx.get(upstream + "/__last_checkout", timeout=10).content
    card = orjson.loads(stored)["payment"]["card"]
    expect(card["number"].startswith("pe1."), "the card reached the shop without ciphertext")
    expect("cvv" not in card, "the CVV reached the shop")
    expect(CARD.encode() not in stored and b"Marylebone" not in stored, "plaintext reached the shop")


def check_passthrough(proxy: str) -> None:
    answer = httpx.get(proxy + "/products", timeout=30)
    expect(answer.status_code == 200 and answer.content == PRODUCTS, "the pass-through changed the body")


def wrk_script(folder: Path, auth: str) -> Path:
    body = CHECKOUT.decode().replace("\\", "\\\\").replace('"', '\\"')
    script = folder / "checkout.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "{auth}"\n'
    )
    return script


def wrk(url: str, seconds: int, script: Path | None) -> tuple[float, int]:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "30s"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    expect("Non-2xx" not in out and "Socket errors" not in out, f"wrk saw errors on {url}: {out}")
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    count = re.search(r"([0-9]+) requests in", out)
    expect(found is not None and count is not None, f"wrk printed no rate: {out}")
    assert found is not None and count is not None
    return float(found.group(1)), int(count.group(1))


CLIENT = """
import sys, time, httpx
url, seconds, body, auth = sys.argv[1], float(sys.argv[2]), sys.argv[3].encode(), sys.argv[4]
headers = {"content-type": "application/json", "authorization": auth}
done, started = 0, time.perf_counter()
with httpx.Client(timeout=30) as client:
    while time.perf_counter() - started < seconds:
        r = client.post(url, content=body, headers=headers) if body else client.get(url)
        if r.status_code >= 300:
            sys.exit(f"{url} answered {r.status_code}")
        done += 1
print(done / (time.perf_counter() - started))
"""


def client_processes(url: str, seconds: int, body: bytes, auth: str) -> tuple[float, int]:
    """Fallback load: CONNECTIONS // 4 client processes, one connection each (may be the bottleneck)."""
    command = [sys.executable, "-c", CLIENT, url, str(seconds), body.decode(), auth]
    clients = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(CONNECTIONS // 4)]
    rates = []
    for client in clients:
        out, _ = client.communicate(timeout=seconds + 60)
        expect(client.returncode == 0, f"a load client failed on {url}")
        rates.append(float(out))
    return sum(rates), round(sum(rates) * seconds)


def rate(url: str, script: Path | None, auth: str, servers: list[int]) -> tuple[float, float]:
    """(requests/s, CPU seconds per request of the serving processes) over DURATION after a warm-up."""
    body = CHECKOUT if script is not None else b""
    if shutil.which("wrk"):
        wrk(url, WARMUP, script)
        cpu = cpu_seconds(servers)
        rps, count = wrk(url, DURATION, script)
    else:
        client_processes(url, WARMUP, body, auth)
        cpu = cpu_seconds(servers)
        rps, count = client_processes(url, DURATION, body, auth)
    return rps, (cpu_seconds(servers) - cpu) / max(1, count)


def serve(workers: int, upstream: str, data: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    from privacy_middleware.demo.run import demo_policy_path

    data.mkdir()
    port = free_port()
    proxy_env = {
        **env,
        "PRIVACY_POLICY_FILE": str(demo_policy_path()),
        "PRIVACY_DATA_DIR": str(data),
        "PRIVACY_DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite+aiosqlite:///{data / 'privacy.db'}"),
        "PRIVACY_KEYS": f"local://{data / 'keyring.json'}",
        "PRIVACY_JWT__SECRET": SECRET,
        "PRIVACY_JWT__ALGORITHMS": "HS256",
        "PRIVACY_PSEUDONYM_SECRET": "bench-pseudonym-secret-0123456789",
    }
    command = [sys.executable, "-m", "privacy_middleware.cli", "serve", "--upstream", upstream, "--port", str(port)]
    with (data / "serve.log").open("wb") as log:  # its start-up warnings stay out of the table
        process = subprocess.Popen(
            [*command, "--workers", str(workers), "--log-level", "warning"],
            env=proxy_env,
            cwd=data,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/privacy/health", process)
    deadline = time.monotonic() + 60
    while workers > 1 and len(worker_pids(process.pid)) < workers:
        expect(time.monotonic() < deadline, f"serve --workers {workers} did not start its workers")
        time.sleep(0.2)
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def main(smoke: bool = False) -> list[Row]:
    table = Table()
    auth = f"Bearer {token()}"
    counts = (1, 2) if smoke else WORKERS
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        shop = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench_workers:upstream_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(up_port),
                *server_flags(),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=Path(__file__).parent,
        )
        script = wrk_script(folder, auth)
        generator = (
            f"wrk, {THREADS} threads, {CONNECTIONS} connections"
            if shutil.which("wrk")
            else f"{CONNECTIONS // 4} httpx client processes (may be the bottleneck)"
        )
        print(
            f"bench_workers: serve --workers {', '.join(map(str, counts))}; {os.cpu_count()} cpus, load average"
            f" {os.getloadavg()[0]:.1f}; load: {generator}, {DURATION} s per figure after {WARMUP} s;"
            f" upstream uvicorn {' '.join(server_flags())}"
        )
        rates: dict[tuple[str, int], float] = {}
        costs: dict[tuple[str, int], float] = {}
        try:
            wait_ready(upstream + "/products", shop)
            for workers in counts:
                process, proxy = serve(workers, upstream, folder / f"w{workers}", env)
                try:
                    check_passthrough(proxy)
                    check_checkout(proxy, upstream, auth)
                    if smoke:
                        continue
                    servers = worker_pids(process.pid) or [process.pid]
                    for route, url, body in (("passthrough", "/products", None), ("checkout", "/checkout", script)):
                        rates[route, workers], costs[route, workers] = rate(proxy + url, body, auth, servers)
                    check_shop(upstream)  # the last checkout under load was protected too
                    print(
                        f"  {workers} worker(s), load average {os.getloadavg()[0]:.1f}: pass-through"
                        f" {rates['passthrough', workers]:,.0f} req/s ({costs['passthrough', workers] * 1e3:.2f} ms"
                        f" CPU per request in the workers), checkout {rates['checkout', workers]:,.0f} req/s"
                        f" ({costs['checkout', workers] * 1e3:.2f} ms CPU)",
                        flush=True,
                    )
                finally:
                    stop(process)
        finally:
            stop(shop)
    if smoke:
        table.add(Row("workers", "serve --workers 1 and 2: paths checked", 1.0, 1.0, "itself", None, "ok", True))
        return table.rows
    for route, label in (("passthrough", "pass-through GET /products"), ("checkout", "checkout POST, 8 fields")):
        base = rates[route, 1]
        for workers in counts:
            table.add(
                Row(
                    "workers",
                    f"{label}, {workers} worker(s) (req/s)",
                    rates[route, workers],
                    base,
                    "1 worker",
                    None,
                    "req/s",
                    True,
                )
            )
        for workers in counts:
            name = f"{label}, {workers} worker(s): CPU per request"
            table.add(Row("workers", name, costs[route, workers], costs[route, 1], "1 worker"))
    return table.rows


if __name__ == "__main__":
    main(is_smoke())
