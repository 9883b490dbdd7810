"""Audit trail throughput: the batching writer into SQLite and PostgreSQL, and offline verify.

Run:  .venv/bin/python bench/bench_audit.py [--events 50000 | --seconds 60] [--no-postgres] [--smoke]

Each figure is printed with a baseline measured in the same run: the raw floor of the work
that cannot be avoided (canonical JSON + SHA-256 per event for the writer; reading + SHA-256
per line for the verifier), so the ratio says what the log, the database and the checks add.
PostgreSQL uses a throw-away database created and dropped here (PRIVACY_TEST_POSTGRES admin DSN).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import hashlib
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).parent))
from common import Row, Table, expect

from privacy_middleware.audit import AuditEvent, AuditLog, AuditWriter, data_access, export, login_attempt, verify
from privacy_middleware.audit.events import new_uid
from privacy_middleware.store import Database

POSTGRES_ADMIN_DSN = os.environ.get("PRIVACY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def make_event(i: int) -> AuditEvent:
    """A realistic mix: half logins (three sealed personal values each), half disclosures of 50 records."""
    if i % 2:
        return login_attempt(
            success=i % 7 != 0,
            subject=f"cust_{i % 5000}",
            username=f"user{i % 5000}@shop.test",
            ip=f"198.51.{(i >> 8) % 256}.{i % 256}",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            device=f"dev-{i % 9000}",
            route="POST /account/login",
        )
    return data_access(
        principal="svc_logistics",
        subject=f"cust_{i % 5000}",
        recipient="logistics",
        purpose="delivery",
        categories=["user.contact.address.delivery", "user.contact.phone"],
        fields=["$.shipping.address", "$.shipping.phone"],
        route="GET /orders/{id}",
        action="disclose",
    )


def make_events(n: int) -> list[AuditEvent]:
    return [make_event(i) for i in range(n)]


class EventSource:
    """Fresh events at almost no cost: a pool of realistic events, each re-issued with a new id and time.

    Building an event (validation, network hint) is the request path's cost, not the writer's; a
    pool keeps the generator from competing with the writer for the CPU it measures."""

    def __init__(self, size: int = 2_000) -> None:
        self.pool = make_events(size)

    def __call__(self, i: int) -> AuditEvent:
        return dataclasses.replace(self.pool[i % len(self.pool)], uid=new_uid(), time=datetime.now(UTC))


def floor_writer(events: list[AuditEvent]) -> float:
    start = time.perf_counter()
    for e in events:
        hashlib.sha256(b"\x00" + orjson.dumps(e.document(), option=orjson.OPT_SORT_KEYS)).digest()
    return len(events) / (time.perf_counter() - start)


@dataclass(slots=True)
class WriterRun:
    rate: float  # events committed to the store per second
    emitted: int
    seconds: float
    emit_us: float
    spooled: int
    cpu_rate: float  # events per second of this process's CPU time (writer, driver, SQLite threads)


async def run_writer(url: str, events: int, seconds: float | None, workdir: Path) -> WriterRun:
    """Emit `events` (or for `seconds`) as a busy app would, never waiting unless the writer asks to."""
    database = Database(url)
    try:
        await database.upgrade()
        log = AuditLog(workdir / "signing.pem", os.urandom(32), checkpoint_every=1000)
        registry = CollectorRegistry()
        writer = AuditWriter(database, log, spool_dir=workdir / "spool", registry=registry)
        await writer.start()
        start = time.perf_counter()
        cpu_start = time.process_time()
        deadline = start + seconds if seconds else None
        in_emit = 0.0
        clock = time.perf_counter
        i = 0
        make_event = EventSource()
        while (i < events) if deadline is None else (clock() < deadline):
            event = make_event(i)
            before = clock()
            writer.emit(event)
            in_emit += clock() - before
            i += 1
            if i % 500 == 0:
                # a busy app: keep emitting, but let the writer run (as network I/O would)
                while writer.pressure() > 0.8:
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0)
        await writer.stop()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        dropped = writer.metrics.dropped.total
        expect(dropped == 0, f"audit writer dropped {dropped} events")
        expect(writer.metrics.written.total >= i, f"only {writer.metrics.written.total} of {i} events written")
        return WriterRun(i / elapsed, i, elapsed, in_emit / i * 1e6, writer.metrics.spooled.total, i / cpu)
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
    expect(report.status == 0, f"verification failed: {report.reason}")
    return report.events / elapsed, floor, report.events


async def with_postgres(events: int, seconds: float | None, workdir: Path) -> WriterRun:
    import asyncpg

    name = f"pm_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        return await run_writer(f"{base}/{name}", events, seconds, workdir)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def main(
    smoke: bool = False, events: int = 50_000, seconds: float | None = None, postgres: bool = True
) -> list[Row]:
    if smoke:
        events, seconds = 600, None
    table = Table()
    logging.getLogger("privacy_middleware.audit").setLevel(logging.ERROR)
    what = f"for {seconds:g} s" if seconds else f"{events} events"
    print(
        f"bench_audit: {what} (half logins with 3 sealed values, half disclosures), batch 500, queue 10000,"
        f" checkpoint every 1000; Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    sample = make_events(min(events, 20_000))
    floor = floor_writer(sample)
    del sample
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        run = await run_writer(url, events, seconds, workdir / "sqlite")
        print(
            f"  SQLite: {run.emitted} events in {run.seconds:.1f} s, emit() {run.emit_us:.1f} µs,"
            f" spooled {run.spooled}, 0 dropped; {run.cpu_rate:,.0f} events per CPU second of this process"
        )
        table.add(Row("audit", "writer SQLite (WAL), events/s", run.rate, 20_000, "20k ev/s target", 1.0, "ev/s", True))
        table.add(
            Row(
                "audit",
                "writer SQLite vs JSON+SHA-256 floor",
                run.rate,
                floor,
                "canonical JSON+SHA-256",
                None,
                "ev/s",
                True,
            )
        )
        if postgres:
            pg = await with_postgres(events, seconds, workdir / "pg")
            print(
                f"  PostgreSQL: {pg.emitted} events in {pg.seconds:.1f} s, spooled {pg.spooled}, 0 dropped;"
                f" {pg.cpu_rate:,.0f} events per client CPU second (the server's CPU not counted)"
            )
            table.add(
                Row("audit", "writer PostgreSQL, events/s", pg.rate, 20_000, "20k ev/s target", 1.0, "ev/s", True)
            )
        gc.collect()
        vrate, vfloor, count = await run_verify(url, workdir)
        expect(count >= run.emitted, f"the export holds {count} leaves, {run.emitted} were emitted")
        table.add(Row("audit", "offline verify, events/s", vrate, 200_000, "200k ev/s target", 1.0, "ev/s", True))
        table.add(
            Row(
                "audit",
                "offline verify vs read+SHA-256 floor",
                vrate,
                vfloor,
                "read+SHA-256 per line",
                None,
                "ev/s",
                True,
            )
        )
    return table.rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, help="emit for this long instead of a fixed count (sustained)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.smoke, args.events, args.seconds, not args.no_postgres))
