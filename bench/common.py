"""Shared helpers: call ASGI apps directly (no HTTP client in the loop), check the path, compare, tabulate.

Every bench first runs the request it names once through `probe` and asserts the status and a property
of the body (`expect`), so a figure can never come from a refused or short-circuited path. `--smoke`
runs each bench with a handful of iterations: correctness only, which is what CI runs.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# What `compare` and `compare_sync` time: CPU seconds of the thread running the event loop (the
# request path and the background tasks it shares a loop with), so other processes' load on a
# shared machine does not enter the ratios; BENCH_CLOCK=wall times wall-clock seconds instead.
CLOCK = time.perf_counter if os.environ.get("BENCH_CLOCK") == "wall" else time.thread_time
CLOCK_NAME = "wall-clock" if CLOCK is time.perf_counter else "thread CPU"


class BenchFailure(AssertionError):
    """The bench did not measure the path it names (wrong status, unchanged body, dropped events)."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise BenchFailure(message)


def is_smoke(argv: list[str] | None = None) -> bool:
    return "--smoke" in (sys.argv if argv is None else argv)


@dataclass(slots=True)
class Row:
    """One figure: its time (or rate), the baseline measured in the same run, and the target ratio."""

    bench: str
    name: str
    value: float
    baseline: float
    baseline_name: str
    target: float | None = None  # the ratio must be <= target (>= target when higher_is_better)
    unit: str = "µs"
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target


@dataclass(slots=True)
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print_row(row)
        return row


def print_row(row: Row) -> None:
    target = ""
    if row.target is not None:
        sign = ">=" if row.higher_is_better else "<="
        target = f"  target {sign} {row.target:g}x: {'met' if row.met else 'MISSED'}"
    value = f"{row.value:12,.0f} {row.unit}" if row.unit != "µs" else f"{row.value * 1e6:10.2f} µs"
    print(f"  {row.name:<50} {value}  {row.ratio:7.3f}x {row.baseline_name}{target}", flush=True)


def print_table(rows: list[Row]) -> None:
    print(f"\n{'bench':<10} {'figure':<50} {'value':>16} {'ratio':>9}  {'baseline':<36} target")
    for row in rows:
        value = f"{row.value:,.0f} {row.unit}" if row.unit != "µs" else f"{row.value * 1e6:.2f} µs"
        target = ""
        if row.target is not None:
            sign = ">=" if row.higher_is_better else "<="
            target = f"{sign} {row.target:g}x {'met' if row.met else 'MISSED'}"
        print(f"{row.bench:<10} {row.name:<50} {value:>16} {row.ratio:8.3f}x  {row.baseline_name:<36} {target}")


def minimal_app_factory(response_body: bytes = b'{"ok":true}') -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(response_body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": response_body})

    return app


class RecordingApp:
    """The minimal app that also keeps the last request body it received (what the shop would store)."""

    def __init__(self, response_body: bytes = b'{"ok":true}', status: int = 200) -> None:
        self.response_body = response_body
        self.status = status
        self.received: bytes | None = None
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        self.received = b"".join(chunks)
        self.calls += 1
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self.response_body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.response_body})


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": headers or [],
    }


def call(
    app: Any, method: str, path: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> Callable[[], Awaitable[None]]:
    scope = _scope(method, path, headers)

    async def once() -> None:
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            pass

        await app(dict(scope), receive, send)

    return once


@dataclass(slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


async def probe(
    app: Any, method: str, path: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> Answer:
    """Run one request and keep what the client would see, to assert the bench measures its path."""
    delivered = False
    answer = Answer(0, [], b"")

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(_scope(method, path, headers), receive, send)
    return answer


async def measure(fn: Callable[[], Awaitable[None]], iterations: int, repeats: int = 7) -> float:
    """Median seconds per call over several repeats, after a warm-up."""
    for _ in range(min(iterations, 500)):
        await fn()
    samples = []
    for _ in range(repeats):
        start = CLOCK()
        for i in range(iterations):
            await fn()
            if i % 16 == 15:
                # Let background tasks (the audit writer) run, as real network I/O would.
                await asyncio.sleep(0)
        samples.append((CLOCK() - start) / iterations)
    return statistics.median(samples)


def measure_sync(fn: Callable[[], object], iterations: int, repeats: int = 7) -> float:
    for _ in range(min(iterations, 500)):
        fn()
    samples = []
    for _ in range(repeats):
        start = CLOCK()
        for _ in range(iterations):
            fn()
        samples.append((CLOCK() - start) / iterations)
    return statistics.median(samples)


def report(name: str, seconds: float, baseline: float, baseline_name: str) -> None:
    print(f"{name:<52} {seconds * 1e6:9.2f} µs   {seconds / baseline:6.3f}x {baseline_name}")


async def compare(fns: dict[str, Callable[[], Awaitable[None]]], iterations: int, rounds: int = 7) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternating rounds, each round in the
    reverse order of the one before (A B C C B A A B C ...).

    On a shared machine whose speed drifts, every figure of one round sees the same machine, so the
    ratios between them hold where back-to-back medians would not; reversing the order every other
    round gives no function the place just after a warm-up or just before a slowdown."""
    for fn in fns.values():
        for _ in range(min(iterations, 200)):
            await fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    forward = list(fns.items())
    for round_ in range(rounds):
        for name, fn in forward if round_ % 2 == 0 else forward[::-1]:
            start = CLOCK()
            for i in range(iterations):
                await fn()
                if i % 16 == 15:
                    await asyncio.sleep(0)  # let background tasks (the audit writer) run
            samples[name].append((CLOCK() - start) / iterations)
    return {name: statistics.median(values) for name, values in samples.items()}


def compare_sync(fns: dict[str, Callable[[], object]], iterations: int, rounds: int = 7) -> dict[str, float]:
    """`compare` for plain functions."""
    for fn in fns.values():
        for _ in range(min(iterations, 200)):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    forward = list(fns.items())
    for round_ in range(rounds):
        for name, fn in forward if round_ % 2 == 0 else forward[::-1]:
            start = CLOCK()
            for _ in range(iterations):
                fn()
            samples[name].append((CLOCK() - start) / iterations)
    return {name: statistics.median(values) for name, values in samples.items()}


def as_async(fn: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        fn()

    return run
