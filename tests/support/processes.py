"""Child processes a test starts and may kill: reaped whatever the test did to them."""

from __future__ import annotations

import subprocess


def reap(process: subprocess.Popen[bytes]) -> None:
    """Kill the process if it still runs, wait for it, close its output pipe."""
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
