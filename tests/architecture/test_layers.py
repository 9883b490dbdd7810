"""The floors hold: dependencies point one way (faces -> pipeline -> domain -> crypto, store, policy).

Reads every module of the package with `ast` (imports inside functions and TYPE_CHECKING blocks
count too: they are dependencies all the same) and checks the rules docs/architecture.md states.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

PACKAGE = "privacy_middleware"
SRC = Path(__file__).resolve().parents[2] / "src" / PACKAGE

# The faces: what a user runs or mounts. Only they may build or hold the composition root.
FACES = ("runtime", "middleware", "serve", "cli", "replay", "rights.cli", "breach.cli", "__init__")
FACE_PACKAGES = ("api", "demo", "commands")  # commands: the CLI's command groups
DOMAIN = (
    "consent",
    "fields",
    "audit",
    "rights",
    "identity",
    "pipeline",
    "breach",
    "guests",
    "routing",
    "integrations",
    "background",
    "metrics",
    "gauges",
    "principal",
    "context",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Modules of the package `path` imports, by name relative to the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name.removeprefix(PACKAGE + "."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith(PACKAGE + "."):
                target = node.module.removeprefix(PACKAGE + ".")
            else:
                continue
            found.add(target)
            for alias in node.names:  # `from . import steps`: the submodule itself
                found.add(f"{target}.{alias.name}" if target else alias.name)
    return found


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges[name] = {target for target in imports_of(path, name) if target in MODULES and target != name}
    return edges


EDGES = graph()


def is_face(name: str) -> bool:
    return name in FACES or name.split(".")[0] in FACE_PACKAGES


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def crossings(source: Callable[[str], bool], target: Callable[[str], bool]) -> list[str]:
    """Imports from a module `source` accepts to a module `target` accepts, as "a -> b"."""
    return sorted(f"{name} -> {to}" for name, targets in EDGES.items() if source(name) for to in targets if target(to))


def test_the_graph_is_read() -> None:
    assert "runtime" in EDGES and "pipeline.order" in EDGES and "policy.access" in EDGES["pipeline.disclose"]


def test_nothing_below_the_faces_imports_the_runtime() -> None:
    offenders = sorted(name for name, targets in EDGES.items() if "runtime" in targets and not is_face(name))
    assert offenders == []


def test_the_policy_model_imports_nothing_of_the_field_engine() -> None:
    assert crossings(lambda name: under(name, "policy"), lambda to: under(to, "fields")) == []


def test_the_store_imports_nothing_of_the_domain() -> None:
    assert crossings(lambda name: under(name, "store"), lambda to: under(to, *DOMAIN)) == []


def test_only_the_cli_and_the_demo_import_the_demo() -> None:
    assert crossings(lambda name: not under(name, "demo", "cli"), lambda to: under(to, "demo")) == []


def test_the_domain_knows_no_starlette() -> None:
    offenders = []
    for name in EDGES:
        if not under(name, "consent", "fields", "audit", "rights", "crypto", "store", "policy", "pipeline"):
            continue
        if name == "rights.cli":
            continue
        tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            if any(n == "starlette" or n.startswith("starlette.") for n in names):
                offenders.append(name)
    assert offenders == []


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in EDGES[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(EDGES):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("allowed", [{"store", "store.database", "store.migrations"}])
def test_no_import_circles_but_the_store_and_its_migrations(allowed: set[str]) -> None:
    assert [c for c in cycles() if not set(c) <= allowed] == []


def test_platform_settings_sit_on_the_bottom_floor() -> None:
    """`settings.py` builds the webhook settings from `platforms/`, so platforms import nothing else."""
    assert crossings(lambda name: under(name, "platforms"), lambda to: not under(to, "platforms")) == []
