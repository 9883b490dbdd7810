"""Every bench runs in smoke mode: few iterations, but each asserts it measured the path it names
(status, a property of the body, no dropped audit event), so a bench that would measure a refused or
short-circuited path fails here instead of printing a flattering figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.native import needs_native

BENCH = Path(__file__).parents[2] / "bench"


def test_every_bench_measures_the_path_it_names() -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=BENCH.parent,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    table = run.stdout.rsplit("\nbench ", 1)[-1]
    for bench in ("middleware", "routes", "crypto", "consent", "scaling", "projection", "audit", "breach", "workers"):
        assert f"\n{bench} " in table, bench
    assert "FAILED" not in run.stdout
    # the SQLite writer's baseline: the same events written by SQLite alone, all of them stored
    assert "SQLite alone, events/s" in table and "writer SQLite vs SQLite alone" in table
    # and the subject runs against the B-tree indexes they replaced, the same events
    assert "SQLite alone: subject runs vs B-tree" in table


@needs_native
def test_the_pass_through_profile_measures_the_middlewares_own_pass_through() -> None:
    """`profile_passthrough.py` splits the Starlette pass-through into steps rebuilt from the middleware's
    parts: each variant answers the shop's body, and the middleware took its remembered pass-through."""
    run = subprocess.run(
        [sys.executable, str(BENCH / "profile_passthrough.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH.parent,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "split: C pass-through decision, guard and messages" in run.stdout


def test_the_audit_instruction_count_loops_build_what_they_name() -> None:
    """`profile_audit.py loop` (what `count` runs under callgrind) builds the events, then seals them and
    builds a row per event and a side record per login, or exits non-zero."""
    for stage in ("producer", "writer"):
        run = subprocess.run(
            [sys.executable, str(BENCH / "profile_audit.py"), "loop", "200", stage],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=BENCH.parent,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    refused = subprocess.run(
        [sys.executable, str(BENCH / "profile_audit.py"), "loop", "200", "store"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCH.parent,
    )
    assert refused.returncode != 0 and "unknown stage" in refused.stderr
