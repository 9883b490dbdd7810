"""Every way this project starts uvicorn leaves its proxy headers off: uvicorn trusts
`X-Forwarded-For` from loopback by default, which would let a local client pick its address and
rotate past the login lockout. The client address comes from PRIVACY_TRUSTED_PROXIES only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^\s*(?:\$\s*)?(?:\w+=\S*\s+)*(?:python3? -m |exec )?uvicorn\s")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "src").rglob("*.md"))]


def test_every_documented_uvicorn_command_turns_proxy_headers_off() -> None:
    for path in documents():
        in_code = False
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("```"):
                in_code = not in_code
            elif in_code and COMMAND.search(line):
                assert "--no-proxy-headers" in line, f"{path.name}: {line.strip()}"


def test_every_uvicorn_run_in_the_package_turns_proxy_headers_off() -> None:
    calls = 0
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "uvicorn.run":
                calls += 1
                keywords = {k.arg: k.value for k in node.keywords}
                explicit = "proxy_headers" in keywords and ast.unparse(keywords["proxy_headers"]) == "False"
                assert explicit or None in keywords, f"{path.name}: {ast.unparse(node)}"  # or **options
    assert calls >= 2  # the demo and `serve`
