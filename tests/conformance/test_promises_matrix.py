"""docs/promises.md and the conformance suite agree: every cited test exists, every test is cited,
and the skip / xfail marks in the matrix match the marks on the tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from support.conformance import NAMES, REPO, SEEDS

MATRIX = REPO / "docs" / "promises.md"
SUITE = Path(__file__).parent


def suite_tests(seed: str) -> dict[str, str]:
    """Test name -> its mark ("skip", "xfail" or "") in the seed's conformance module."""
    tree = ast.parse((SUITE / f"test_{NAMES[seed]}.py").read_text())
    tests: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name.startswith("test_"):
            marks = [ast.unparse(d) for d in node.decorator_list]
            tests[node.name] = next((m for m in ("skip", "xfail") if any(f"mark.{m}" in d for d in marks)), "")
    return tests


def matrix_rows(seed: str) -> dict[str, str]:
    """Test name -> the mark the matrix gives it, for the seed's section."""
    text = MATRIX.read_text()
    section = text.split(f"## {seed}.txt", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| Promise", "| ---")):
            continue
        proof = line.rstrip(" |").rsplit(" | ", 1)[1]
        name = re.findall(r"`(test_[a-z0-9_]+)`", proof)
        assert len(name) == 1, line
        rows[name[0]] = "skip" if "**skip" in proof else "xfail" if "**xfail" in proof else ""
    return rows


def test_every_seed_has_a_section_naming_its_module() -> None:
    text = MATRIX.read_text()
    for seed in SEEDS:
        assert f"## {seed}.txt" in text
        assert f"Module: `test_{NAMES[seed]}.py`" in text


def test_matrix_cites_every_conformance_test_with_its_mark() -> None:
    for seed in SEEDS:
        assert matrix_rows(seed) == suite_tests(seed), seed
