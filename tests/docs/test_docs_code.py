"""Every Python block in README.md, docs/*.md and the integration READMEs runs, so the docs cannot drift.

Blocks of one file run in order in one namespace (later blocks may use earlier names), in an empty
directory, with the demo policy as PRIVACY_POLICY_FILE. A block whose info string says `fragment`
(```` ```python fragment ````) shows part of a larger program: it must still parse, but is not run.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import privacy_middleware

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(privacy_middleware.__file__).resolve().parent
DEMO_POLICY = PACKAGE / "demo" / "policy.toml"
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(PACKAGE / "integrations").glob("*/README.md")])
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    info: str
    source: str

    @property
    def fragment(self) -> bool:
        return "fragment" in self.info.split()


def python_blocks(document: Path) -> list[Block]:
    text = document.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        info = match.group(1).strip()
        if info.split()[:1] in (["python"], ["py"]):
            line = text.count("\n", 0, match.start()) + 2
            blocks.append(Block(document, line, info, match.group(2)))
    return blocks


def _name(document: Path) -> str:
    return str(document.relative_to(ROOT) if document.is_relative_to(ROOT) else document.relative_to(PACKAGE))


DOCUMENTS_WITH_CODE = [d for d in DOCUMENTS if python_blocks(d)]


def test_the_readme_and_the_guides_have_python_to_run() -> None:
    runnable = [b for d in DOCUMENTS_WITH_CODE for b in python_blocks(d) if not b.fragment]
    assert any(b.document.name == "README.md" and b.document.parent == ROOT for b in runnable)
    assert len(runnable) >= 2


@pytest.mark.parametrize("document", DOCUMENTS_WITH_CODE, ids=_name)
def test_python_blocks_run(document: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRIVACY_POLICY_FILE", str(DEMO_POLICY))
    monkeypatch.setenv("PRIVACY_DATA_DIR", str(tmp_path))
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in python_blocks(document):
        where = f"{_name(document)}:{block.line}"
        try:
            code = compile(block.source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as exc:
            pytest.fail(f"{where}: the block does not parse: {exc}")
        if block.fragment:
            continue
        try:
            result = eval(code, namespace)
            if inspect.iscoroutine(result):
                asyncio.run(result)
        except Exception as exc:
            pytest.fail(f"{where}: the block fails: {type(exc).__name__}: {exc}")
