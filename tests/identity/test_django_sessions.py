"""The in-process Django session resolver against a real Django project (sessions, auth, SQLite).

Django can be configured once per process, so the scenario runs in a child process with warnings
as errors; its assertions are the test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_django_sessions_resolve_customers_staff_and_signed_out_callers(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, str(HERE / "django_session_scenario.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "django session scenario passed" in done.stdout
