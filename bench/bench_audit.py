"""Audit trail throughput: the batching writer into SQLite and PostgreSQL, and offline verify.

Run:  PYTHONPATH=src python bench/bench_audit.py [--events 50000] [--no-postgres]

Each figure is printed with a baseline measured in the same run: the raw floor of the work
that cannot be avoided (canonical JSON + SHA-256 per event for the writer; reading + SHA-256
per line for the verifier), so the ratio says what the log, the database and the checks add.
PostgreSQL uses a throw-away database created and dropped here (PRIVACY_TEST_POSTGRES admin DSN).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from privacy_middleware.audit import AuditLog, AuditWriter, data_access, export, login_attempt, verify
from privacy_middleware.store import Database

POSTGRES_ADMIN_DSN = os.environ.get("PRIVACY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def make_events(n: int) -> list:  # type: ignore[type-arg]
    """A realistic mix: half logins (three sealed personal values each), half data disclosures."""
    events = []
    for i in range(n):
        if i % 2:
            events.append(
                login_attempt(
                    success=i % 7 != 0,
                    subject=f"cust_{i % 5000}",
                    username=f"user{i % 5000}@shop.test",
                    ip=f"198.51.{(i >> 8) % 256}.{i % 256}",
                    user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
                    device=f"dev-{i % 9000}",
                    route="POST /account/login",
                )
            )
        else:
            events.append(
                data_access(
                    principal="svc_logistics",
                    subject=f"cust_{i % 5000}",
                    recipient="logistics",
                    purpose="delivery",
                    categories=["user.contact.address.delivery", "user.contact.phone"],
                    fields=["$.shipping.address", "$.shipping.phone"],
                    route="GET /orders/{id}",
                    action="disclose",
                )
            )
    return events


def floor_writer(events: list) -> float:  # type: ignore[type-arg]
    start = time.perf_counter()
    for e in events:
        hashlib.sha256(b"\x00" + orjson.dumps(e.document(), option=orjson.OPT_SORT_KEYS)).digest()
    return len(events) / (time.perf_counter() - start)


async def run_writer(url: str, events: list, workdir: Path) -> tuple[float, float]:  # type: ignore[type-arg]
    database = Database(url)
    try:
        await database.upgrade()
        log = AuditLog(workdir / "signing.pem", os.urandom(32), checkpoint_every=1000)
        registry = CollectorRegistry()
        writer = AuditWriter(database, log, spool_dir=workdir / "spool", registry=registry)
        await writer.start()
        start = time.perf_counter()
        in_emit = 0.0
        clock = time.perf_counter
        for i, event in enumerate(events):
            before = clock()
            writer.emit(event)
            in_emit += clock() - before
            if i % 1000 == 999:
                # a busy app: keep emitting, but never past the queue bound
                while len(writer._queue) > writer.queue_size - 2000:
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0)
        await writer.stop()
        elapsed = time.perf_counter() - start
        dropped = registry.get_sample_value("privacy_audit_events_dropped_total") or 0
        spooled = registry.get_sample_value("privacy_audit_events_spooled_total") or 0
        if dropped or spooled:
            print(f"  warning: dropped={dropped:.0f} spooled={spooled:.0f}")
        emit_us = in_emit / len(events) * 1e6
        return len(events) / elapsed, emit_us
    finally:
        await database.dispose()


async def run_verify(url: str, workdir: Path) -> tuple[float, float, int]:
    database = Database(url)
    try:
        out = workdir / "export"
        await export(database, out)
    finally:
        await database.dispose()
    pem = (out / "public_key.pem").read_bytes()
    lines = (out / "events.jsonl").read_bytes().split(b"\n")
    start = time.perf_counter()
    for line in lines:
        hashlib.sha256(b"\x00" + line).digest()
    floor = len(lines) / (time.perf_counter() - start)
    timings = []
    for _ in range(3):  # best of three, like timeit: the first run also warms the page cache
        start = time.perf_counter()
        report = verify(out, pem)
        timings.append(time.perf_counter() - start)
    elapsed = min(timings)
    if report.status != 0:
        raise SystemExit(f"verification failed: {report.reason}")
    return report.events / elapsed, floor, report.events


async def with_postgres(events: list, workdir: Path) -> float:  # type: ignore[type-arg]
    import asyncpg

    name = f"pm_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        rate, _ = await run_writer(f"{base}/{name}", events, workdir)
        return rate
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(
        f"audit bench: {args.events} events (half logins with 3 sealed values, half disclosures),"
        f" batch 500, queue 10000, checkpoint every 1000; Python {platform.python_version()},"
        f" {platform.machine()}, {os.cpu_count()} CPUs"
    )
    events = make_events(args.events)
    floor = floor_writer(events)
    print(f"baseline  canonical JSON + SHA-256 per event: {floor:12,.0f} events/s")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        rate, emit_us = await run_writer(url, events, workdir / "sqlite")
        print(
            f"writer    SQLite (WAL, synchronous=NORMAL):   {rate:12,.0f} events/s"
            f"  ({rate / floor:.3f} x baseline; emit() costs {emit_us:.1f} us/event on the request path)"
        )
        if not args.no_postgres:
            pg = await with_postgres(events, workdir / "pg")
            ratio = pg / floor
            print(f"writer    PostgreSQL (advisory lock):          {pg:10,.0f} events/s  ({ratio:.3f} x base)")
        del events  # the verifier runs as its own process in real life: start it from a clean heap
        gc.collect()
        vrate, vfloor, count = await run_verify(url, workdir)
        print(f"baseline  read + SHA-256 per exported line:   {vfloor:12,.0f} lines/s")
        ratio = vrate / vfloor
        print(f"verify    offline, {count} leaves, best of 3: {vrate:9,.0f} events/s  ({ratio:.3f} x baseline)")
    print("targets: writer >= 10,000 events/s on SQLite; verify >= 100,000 events/s")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
