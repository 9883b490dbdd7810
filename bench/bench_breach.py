"""Breach monitor throughput: data-access leaves turned into detector input, canary checks and
bulk-access tallies, against the floor of reading the same leaves from the store and parsing them.

Run:  .venv/bin/python bench/bench_breach.py [--events 20000]   (or bench/run_all --only breach)

The baseline reads every data-access leaf of the trail page by page (`audit.query.search`, which
parses each leaf's JSON) and does nothing else; the monitor does exactly that read plus its work
(`BreachMonitor.poll`: canary HMACs for every subject, the per-principal and per-recipient tallies,
findings). Both run in the same process on the same SQLite file. The ratio says what detection adds
to merely following the trail. It asserts the monitor really processed every leaf and raised its
bulk finding, so the figure is for the path it names.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from privacy_middleware.audit import AuditLog, data_access
from privacy_middleware.audit.query import MAX_LIMIT, search
from privacy_middleware.breach.canaries import CanaryKey, CanaryRegistry, PlantedCanary
from privacy_middleware.breach.containment import Suspensions
from privacy_middleware.breach.monitor import BreachMonitor
from privacy_middleware.policy.schema import Breach
from privacy_middleware.store import Database

sys.path.insert(0, str(Path(__file__).parent))
from common import Row, Table, expect


class Discard:
    def emit(self, event: object) -> None:
        pass

    async def emit_strict(self, event: object) -> None:
        pass


async def fill(database: Database, log: AuditLog, n: int) -> None:
    batch = []
    for i in range(n):
        batch.append(
            log.seal(
                data_access(
                    principal=f"partner-{i % 5}",
                    subject=f"cus_{i:08x}x",  # no trailing number: not an enumeration
                    categories=["user.contact.address.delivery.street", "user.contact.phone"],
                    purpose="delivery",
                    route="GET /orders/{order_id}",
                    recipient="logistics",
                    action="disclose",
                    ip=f"198.51.100.{i % 250}",
                )
            )
        )
        if len(batch) == 1000:
            await log.append(database, batch)
            batch = []
    if batch:
        await log.append(database, batch)


async def read_only(database: Database) -> int:
    cursor, seen = -1, 0
    while True:
        page = await search(database, kinds=["api_activity.data_*"], after_seq=cursor, limit=MAX_LIMIT)
        if not page:
            return seen
        cursor = page[-1].seq
        seen += len(page)


async def main(smoke: bool = False, events: int | None = None) -> list[Row]:
    events = events or (300 if smoke else 20_000)
    repeat = 1 if smoke else 3
    table = Table()
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'privacy.db'}")
        await database.upgrade()
        log = AuditLog(Path(tmp) / "key.pem", os.urandom(32), checkpoint_every=10_000)
        await fill(database, log, events)
        registry = CanaryRegistry(database, CanaryKey(os.urandom(32)))
        for k in range(10):
            await registry.remember(PlantedCanary(f"cus_canary{k}", (f"ord_canary{k}",), "decoy"), batch="bench")

        baseline_times, monitor_times = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            seen = await read_only(database)
            baseline_times.append(time.perf_counter() - start)
            expect(seen == events, "the baseline did not read every leaf")
            monitor = BreachMonitor(
                database,
                Breach(subjects_per_window=max(10, events // 20)),
                emit=Discard().emit,
                canaries=registry,
                suspensions=Suspensions(database, Discard()),
                sinks=[],
                staff_recipients=frozenset(),
            )
            monitor.cursor = -1
            start = time.perf_counter()
            while await monitor.poll():
                pass
            monitor_times.append(time.perf_counter() - start)
            # the path named: every leaf went through the detectors, and the partners' bulk reads were found
            expect(monitor.cursor == events - 1, "the monitor did not process every leaf")
            expect("detection_finding.bulk_volume" in {e.kind for e in monitor.raised}, "no bulk finding raised")
        await database.dispose()
    base, mon = min(baseline_times), min(monitor_times)
    print(f"bench_breach: {events} data-access leaves on SQLite, best of {repeat}")
    table.add(
        Row(
            "breach",
            "read + parse the trail only",
            events / base,
            events / base,
            "read",
            unit="leaves/s",
            higher_is_better=True,
        )
    )
    table.add(
        Row(
            "breach",
            "monitor (canaries + bulk tallies)",
            events / mon,
            events / base,
            "read",
            unit="leaves/s",
            higher_is_better=True,
        )
    )
    return table.rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--smoke", action="store_true")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.smoke, arguments.events))
