"""Instructions per audit event, counted: the writer's CPU cuts are smaller than a timed run's noise.

    .venv/bin/python bench/profile_audit.py count           # callgrind, both stages, per event
    .venv/bin/python bench/profile_audit.py loop N STAGE    # N events through STAGE, nothing else

STAGE `producer` builds the events as `bench_audit.py`'s producer does; `writer` also seals them,
serialises their leaves and builds their rows, as the writer does on the loop and on its thread
(without the store). `count` runs `loop` under valgrind's callgrind for 2,000 and 6,000 events with
PYTHONHASHSEED=0 and prints the difference over 4,000: start-up, imports and the key's creation
cancel out; the writer's own count is printed less the producer's. It needs valgrind (Debian's
`valgrind`) and takes about three minutes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

STAGES = ("producer", "writer")
_COLLECTED = re.compile(r"Collected : (\d+)")


def loop(count: int, stage: str) -> None:
    from bench_audit import EventSource

    from privacy_middleware.audit.log import AuditLog

    if stage not in STAGES:
        raise SystemExit(f"unknown stage {stage!r}; expected one of {STAGES}")
    with tempfile.TemporaryDirectory() as workdir:
        log = AuditLog(Path(workdir) / "signing.pem", os.urandom(32), checkpoint_every=1000)
        make = EventSource()
        events = [make(i) for i in range(count)]
        if stage == "writer":
            sealed = [log.seal(event) for event in events]
            templates = log.leaf_templates(sealed)
            rows = log._rows(sealed, templates, 0, 0)
            side_rows = log._side_rows(sealed, False)
            if len(rows[0]) != count or len(side_rows[0]) != count // 2:
                raise SystemExit("the writer stage did not build a row per event and a side record per login")


def instructions(count: int, stage: str) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={workdir}/callgrind.out",
                sys.executable,
                __file__,
                "loop",
                str(count),
                stage,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True,
        )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit("callgrind printed no instruction count")
    return int(found.group(1))


def main() -> None:
    if sys.argv[1:2] == ["loop"]:
        loop(int(sys.argv[2]), sys.argv[3])
        return
    if sys.argv[1:] != ["count"]:
        raise SystemExit(__doc__)
    counts = {stage: (instructions(6000, stage) - instructions(2000, stage)) / 4000 for stage in STAGES}
    print(f"producer                 {counts['producer']:10,.0f} instructions per event")
    print(f"seal, leaf and rows      {counts['writer'] - counts['producer']:10,.0f} instructions per event")


if __name__ == "__main__":
    main()
