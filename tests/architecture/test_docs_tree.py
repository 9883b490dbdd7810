"""docs/architecture.md matches the tree: every module or package it names exists, and every
package of the library (and every module at its top) is named there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "privacy_middleware"
DOC = ROOT / "docs" / "architecture.md"
# Paths in backticks and in ```text blocks: `policy/access.py`, `pipeline/`, login.py.
PATH = re.compile(r"(?<![\w.<>-])((?:[a-z_][a-z0-9_]*/)+(?:[a-z_][a-z0-9_]*\.py)?|[a-z_][a-z0-9_]*\.py)(?![\w<>-])")


def named_paths() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    spans = re.findall(r"`([^`\n]+)`", text) + re.findall(r"^```text\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    return {match for span in spans for match in PATH.findall(span)}


def exists(token: str) -> bool:
    if "/" not in token:  # a bare module name: somewhere in the library
        return any(SRC.rglob(token))
    return (SRC / token).exists() or (ROOT / token).exists()


def test_every_module_the_document_names_exists() -> None:
    names = named_paths()
    assert len(names) > 40
    assert sorted(n for n in names if not exists(n)) == []


def test_every_package_and_top_level_module_is_described() -> None:
    names = named_paths()
    packages = sorted(str(p.parent.relative_to(SRC)) for p in SRC.rglob("__init__.py") if p.parent != SRC)
    undescribed = [p for p in packages if not any(n == p + "/" or n.startswith(p + "/") for n in names)]
    top = sorted(p.name for p in SRC.glob("*.py") if p.name != "__init__.py")
    unnamed = [m for m in top if m not in names]
    assert (undescribed, unnamed) == ([], [])
