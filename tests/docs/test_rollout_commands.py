"""Every command in docs/rollout.md runs as written, in a folder holding a shop like the one the page
describes (tests/docs/rollout/: the app, its OpenAPI document, a GraphQL introspection result and
recorded bodies), with PRIVACY_DATABASE_URL naming a migrated store for `report`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "rollout.md"
SHOP = Path(__file__).resolve().parent / "rollout"
FENCE = re.compile(r"^```sh\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def commands() -> list[str]:
    """The page's shell commands, continuation lines joined, in order."""
    found = []
    for block in FENCE.findall(PAGE.read_text(encoding="utf-8")):
        found.extend(line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip())
    return found


def test_the_page_has_a_command_for_every_stage() -> None:
    verbs = {" ".join(c.split()[1:3]) for c in commands()}
    assert {"policy draft", "report --since", "policy trace"} <= verbs


def test_every_command_on_the_page_runs(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    folder = tmp_path / "shop"
    shutil.copytree(SHOP, folder)
    sys.path.insert(0, str(folder))
    try:
        import shop  # type: ignore[import-not-found]

        (folder / "openapi.json").write_bytes(orjson.dumps(shop.app.openapi()))
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("shop", None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PRIVACY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}"
    env["PRIVACY_DATA_DIR"] = str(tmp_path)
    subprocess.run(["privacy-middleware", "db", "upgrade"], cwd=folder, env=env, check=True, capture_output=True)
    for command in commands():
        done = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
    assert 'mode = "report"' in (folder / "privacy-policy.toml").read_text()
    assert all((folder / f"draft-from-{kind}.toml").exists() for kind in ("routes", "graphql", "examples"))
