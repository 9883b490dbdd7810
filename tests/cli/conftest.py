from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import privacy_middleware
from privacy_middleware.cli import main

DEMO_POLICY = Path(privacy_middleware.__file__).resolve().parent / "demo" / "policy.toml"


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each command runs in an empty folder with no PRIVACY_* variables; --env-file changes are undone."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.upper().startswith("PRIVACY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> object:
    def run(*argv: str) -> Ran:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: --version, --help, usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run
