"""Run every bench and print one table of ratios; exit 1 if any bench failed to measure its path.

Run:  bench/run_all [--smoke] [--only NAME ...]
`--smoke` runs each bench with a handful of iterations (correctness only; its figures mean nothing);
the test suite runs it that way. Without it, a full run takes several minutes: run it on an idle
machine and repeat it, the ratios in one run are the figures to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import CLOCK_NAME, BenchFailure, Row, print_table

BENCHES = (
    "middleware",
    "routes",
    "crypto",
    "consent",
    "scaling",
    "projection",
    "sentinel",
    "audit",
    "breach",
    "proxy",
    "workers",
)


def run(name: str, smoke: bool) -> list[Row]:
    module = importlib.import_module(f"bench_{name}")
    result = module.main(smoke)
    rows: list[Row] = asyncio.run(result) if inspect.isawaitable(result) else result
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="few iterations, correctness only")
    parser.add_argument("--only", nargs="*", choices=BENCHES, help="run only these benches")
    args = parser.parse_args()
    rows: list[Row] = []
    failed: list[str] = []
    print(f"timing: {CLOCK_NAME} seconds (BENCH_CLOCK=wall for wall-clock)")
    for name in args.only or BENCHES:
        started = time.perf_counter()
        print(f"\n== bench_{name}", flush=True)
        try:
            rows += run(name, args.smoke)
        except BenchFailure as exc:
            failed.append(name)
            print(f"FAILED bench_{name}: {exc}", flush=True)
        except Exception:
            failed.append(name)
            traceback.print_exc()
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    if args.smoke:
        for row in rows:
            row.target = None  # a handful of iterations says nothing about a target
    print_table(rows)
    if args.smoke:
        print("\nsmoke mode: few iterations, correctness only; these figures are not measurements")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
