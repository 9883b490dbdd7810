"""`privacy-middleware serve --workers 2` as a real process in front of a real shop on loopback.

Requests on one keep-alive connection are answered and protected (the card reaches the shop as
ciphertext, a duplicated key is refused), and a worker killed with SIGKILL is replaced while the
proxy keeps answering. Latency is not asserted here: bench/bench_workers.py measures it.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

import privacy_middleware
from privacy_middleware.demo.run import demo_policy_path
from support.demo import CARD, checkout_body
from support.receive import request_body
from support.servers import free_port, uvicorn_in_thread

SECRET = "serve-workers-secret-" * 3


class RecordingShop:
    """The upstream: keeps every request body it received and answers a small order."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        with self.lock:
            self.received.append(body)
        if scope["path"] == "/checkout":
            status, body = 201, b'{"id":"ord_1","status":"paid"}'
        else:
            status, body = 200, b'{"products":["sencha"]}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def children(pid: int) -> set[int]:
    """The worker processes the supervisor started (Linux /proc; not multiprocessing's resource tracker)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue  # exited meanwhile
            if b"spawn_main" in command:
                found.add(int(child))
    return found


@pytest.fixture
def shop() -> Iterator[tuple[RecordingShop, str]]:
    app = RecordingShop()
    with uvicorn_in_thread(app) as url:
        yield app, url


def settings_env(data_dir: Path) -> dict[str, str]:
    """The PRIVACY_* settings of the served proxy: the demo policy, its own store and keys."""
    return {
        "PRIVACY_POLICY_FILE": str(demo_policy_path()),
        "PRIVACY_DATA_DIR": str(data_dir),
        "PRIVACY_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'p.db'}",
        "PRIVACY_KEYS": f"local://{data_dir / 'keyring.json'}",
        "PRIVACY_JWT__SECRET": SECRET,
        "PRIVACY_JWT__ALGORITHMS": "HS256",
    }


@pytest.fixture
def served(shop: tuple[RecordingShop, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    _, url = shop
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(privacy_middleware.__file__).parents[1]), **settings_env(tmp_path)}
    command = [sys.executable, "-m", "privacy_middleware.cli", "serve", "--upstream", url, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", "2", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90  # two workers start slowly on a busy 2-core machine
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited: {process.stderr.read() if process.stderr else b''!r}")
            if len(children(process.pid)) == 2 and health(port) == 200:
                break
            assert time.monotonic() < deadline, "serve --workers 2 did not start"
            time.sleep(0.2)
        yield process, port
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert b"Traceback" not in stderr, stderr.decode(errors="replace")[-2000:]


def health(port: int) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/privacy/health")
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def token() -> str:
    now = int(time.time())
    return jwt.encode({"sub": "cus_0001", "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")


def post(connection: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    headers = {"content-type": "application/json", "authorization": f"Bearer {token()}"}
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def test_one_keep_alive_connection_is_answered_and_protected_by_two_workers(
    served: tuple[subprocess.Popen[bytes], int], shop: tuple[RecordingShop, str]
) -> None:
    _, port = served
    recorder, _ = shop
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.connect()
        socket_used = connection.sock
        for _ in range(5):
            status, headers, body = post(connection, "/checkout", orjson.dumps(checkout_body()))
            assert status == 201, body
            assert headers.get("connection", "keep-alive").lower() != "close"
            stored = orjson.loads(recorder.received[-1])
            assert stored["payment"]["card"]["number"].startswith("pe1.")
            assert "cvv" not in stored["payment"]["card"]
            assert CARD.encode() not in recorder.received[-1]
            assert b"12 Marylebone Road" not in recorder.received[-1]

        # A duplicated key on a planned route: refused with a code, never forwarded.
        forwarded = len(recorder.received)
        duplicated = b'{"items":[],"payment":{"card":{"number":"4242424242424242","number":"x"}}}'
        status, headers, body = post(connection, "/checkout", duplicated)
        assert status == 422, body
        assert headers["content-type"].startswith("application/problem+json")
        problem = orjson.loads(body)
        assert problem["code"] == "duplicate_key" and problem["field"] == "$.payment.card.number"
        assert b"4242424242424242" not in body
        assert len(recorder.received) == forwarded

        connection.request("GET", "/products")
        response = connection.getresponse()
        assert response.status == 200 and orjson.loads(response.read()) == {"products": ["sencha"]}
        assert connection.sock is socket_used  # every request above went over the one connection
    finally:
        connection.close()


def test_a_killed_worker_is_replaced_and_requests_keep_working(
    served: tuple[subprocess.Popen[bytes], int], shop: tuple[RecordingShop, str]
) -> None:
    process, port = served
    recorder, _ = shop
    before = children(process.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    deadline = time.monotonic() + 120  # the replacement starts as slowly as the first two did
    while True:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else b""
            raise AssertionError(f"serve exited with {process.returncode}: {stderr.decode(errors='replace')}")
        now = children(process.pid)
        if len(now) == 2 and victim not in now and health(port) == 200:
            break
        assert time.monotonic() < deadline, f"the killed worker was not replaced: {before} -> {now}"
        time.sleep(0.2)

    for _ in range(6):  # fresh connections land on either worker
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            status, _, body = post(connection, "/checkout", orjson.dumps(checkout_body()))
        finally:
            connection.close()
        assert status == 201, body
        assert orjson.loads(recorder.received[-1])["payment"]["card"]["number"].startswith("pe1.")
    assert process.poll() is None


def test_serve_gives_each_worker_time_to_start_before_it_counts_as_hung(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """uvicorn's supervisor kills a worker that does not answer its ping in time, and its default
    (5 s) includes a replacement's start: on a CPU-starved machine every replacement was killed."""
    import uvicorn

    from privacy_middleware import serve as serve_module
    from privacy_middleware.serve import WORKER_HEALTHCHECK_SECONDS, serve

    for name, value in settings_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    for name in ("PRIVACY_PROXY_UPSTREAM", "PRIVACY_PROXY_TIMEOUT", "PRIVACY_PROXY_PRESERVE_HOST"):
        monkeypatch.delenv(name, raising=False)  # serve sets them for its workers; restored afterwards
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append({"app": app, **options}))
    monkeypatch.setattr(serve_module, "freeze_startup_heap", lambda: None)  # not the test process's collector

    serve("http://127.0.0.1:9", workers=2)
    serve("http://127.0.0.1:9", workers=1)

    assert calls[0]["workers"] == 2 and calls[0]["factory"] is True
    assert calls[0]["timeout_worker_healthcheck"] == WORKER_HEALTHCHECK_SECONDS >= 30
    assert "timeout_worker_healthcheck" not in calls[1]  # one process: no supervisor


_FREEZE_PROBE = """
import gc, sys
from privacy_middleware import serve
app = serve.create_app() if sys.argv[1] == "server" else serve.build_proxy_app("http://127.0.0.1:9")
print(type(app).__name__, gc.get_freeze_count())
"""


@pytest.mark.parametrize("how", ["server", "library"])
def test_only_the_server_freezes_its_start_up_heap(how: str, tmp_path: Path) -> None:
    """`serve`'s app moves its start-up objects out of the collector's full passes (they made a strict
    reveal wait ~100 ms); the middleware built as a library leaves the host's collector alone."""
    env = {
        **os.environ,
        "PRIVACY_POLICY_FILE": str(demo_policy_path()),
        "PRIVACY_DATA_DIR": str(tmp_path),
        "PRIVACY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        "PRIVACY_KEYS": f"local://{tmp_path / 'keyring.json'}",
        "PRIVACY_JWT__SECRET": SECRET,
        "PRIVACY_JWT__ALGORITHMS": "HS256",
        "PRIVACY_PROXY_UPSTREAM": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-c", _FREEZE_PROBE, how], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    name, frozen = done.stdout.split()
    assert name == "PrivacyMiddleware"
    if how == "server":
        assert int(frozen) > 10_000  # the imported modules and the app, at least
    else:
        assert int(frozen) == 0
