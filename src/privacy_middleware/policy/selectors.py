"""Compiled JSON-path selectors: how the policy addresses fields (the field engine walks them).

Supported syntax (a deliberate subset of JSONPath that covers shop payloads):
`$`, `.name`, `['name with dots']`, `[*]` (every array item), `.*` (every object value), `[3]`.
The leading `$` is optional; selectors inside a record are relative to that record.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ANY = "*"
_TOKEN = re.compile(
    r"""
    \.(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)   # .name
  | \.\*(?P<star>)                        # .*
  | \[\*\]                                # [*]
  | \[(?P<index>-?\d+)\]                  # [3]
  | \['(?P<quoted>(?:[^'\\]|\\.)*)'\]     # ['name']
  | \["(?P<dquoted>(?:[^"\\]|\\.)*)"\]    # ["name"]
    """,
    re.VERBOSE,
)


class SelectorError(ValueError):
    """A selector that cannot be compiled; the message says where."""


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # "key" | "index" | "items" | "values"
    value: str | int = ""


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs three times as much, and a
class Location:  # request makes one per field it touches (nothing hashes one: its parent is a dict)
    """A place in a document: the container and the key or index in it."""

    parent: dict[str, Any] | list[Any]
    key: str | int

    def get(self) -> Any:
        return self.parent[self.key]  # type: ignore[index]

    def set(self, value: Any) -> None:
        self.parent[self.key] = value  # type: ignore[index]

    def delete(self) -> None:
        if isinstance(self.parent, dict):
            self.parent.pop(str(self.key), None)
        else:
            self.parent[self.key] = None  # type: ignore[index]  # keep positions stable in arrays


@dataclass(frozen=True, slots=True)
class Selector:
    source: str
    steps: tuple[Step, ...]
    # Plain key paths (the common case) compiled once: the keys to the parent, and the last key.
    _parents: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _last: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.steps and all(step.kind == "key" for step in self.steps):
            object.__setattr__(self, "_parents", tuple(str(step.value) for step in self.steps[:-1]))
            object.__setattr__(self, "_last", str(self.steps[-1].value))

    @property
    def plain_path(self) -> tuple[tuple[str, ...], str] | None:
        """(the keys to the parent, the last key) of a plain key path; None for any other selector."""
        return None if self._parents is None else (self._parents, self._last)

    @property
    def is_root(self) -> bool:
        return not self.steps

    @property
    def last_key(self) -> str | None:
        if self.steps and self.steps[-1].kind == "key":
            return str(self.steps[-1].value)
        return None

    def values(self, document: Any) -> Iterator[Any]:
        """Every value the selector reaches (the root itself for `$`)."""
        if not self.steps:
            yield document
            return
        for location in self.locations(document):
            yield location.get()

    def locations(self, document: Any) -> Iterator[Location]:
        """Every existing (container, key) the selector reaches; absent paths yield nothing."""
        if self._parents is not None:
            return iter(self.find(document))
        if not self.steps:
            return iter(())
        return _walk(document, self.steps)

    def find(self, document: Any) -> list[Location]:
        """`locations` as a list; a plain key path is followed by dict look-ups, with no generator."""
        if self._parents is None:
            return list(_walk(document, self.steps)) if self.steps else []
        node = self._holder(document)
        return [] if node is None else [Location(node, self._last)]

    def places(self, document: Any) -> list[tuple[Any, Any]]:
        """`find` as (container, key) pairs, for a caller that reads and writes in place at once:
        no `Location` is made for a plain key path (its `__init__` was a tenth of a tracking event)."""
        if self._parents is None:
            return [(location.parent, location.key) for location in _walk(document, self.steps)] if self.steps else []
        node = self._holder(document)
        return [] if node is None else [(node, self._last)]

    def _holder(self, document: Any) -> dict[Any, Any] | None:
        """For a plain key path: the object holding its last key, if the document has that key."""
        node = document
        for key in self._parents or ():
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        if isinstance(node, dict) and self._last in node:
            return node
        return None

    def then(self, other: Selector) -> Selector:
        return Selector(f"{self.source}{other.source.removeprefix('$')}", self.steps + other.steps)


def _walk(node: Any, steps: tuple[Step, ...]) -> Iterator[Location]:
    step, rest = steps[0], steps[1:]
    children: list[tuple[dict[str, Any] | list[Any], str | int]] = []
    if step.kind == "key":
        if isinstance(node, dict) and step.value in node:
            children.append((node, step.value))
    elif step.kind == "index":
        if isinstance(node, list):
            index = int(step.value)
            if -len(node) <= index < len(node):
                children.append((node, index % len(node)))
    elif step.kind == "items":
        if isinstance(node, list):
            children.extend((node, i) for i in range(len(node)))
    elif isinstance(node, dict):  # values
        children.extend((node, k) for k in list(node))
    elif isinstance(node, list):
        children.extend((node, i) for i in range(len(node)))
    for parent, key in children:
        if rest:
            yield from _walk(parent[key], rest)  # type: ignore[index]
        else:
            yield Location(parent, key)


def compile_selector(source: str) -> Selector:
    """Compile once at policy load; raises SelectorError naming the offending position."""
    if not isinstance(source, str) or not source.strip():
        raise SelectorError("selector is empty")
    text = source.strip()
    if text.startswith("$"):
        text = text[1:]
    elif text and text[0] not in ".[":
        text = "." + text
    steps: list[Step] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise SelectorError(f"cannot parse selector {source!r} at character {position + 1}")
        if match.group("name") is not None:
            steps.append(Step("key", match.group("name")))
        elif match.group("star") is not None:
            steps.append(Step("values"))
        elif match.group("index") is not None:
            steps.append(Step("index", int(match.group("index"))))
        elif match.group("quoted") is not None:
            steps.append(Step("key", re.sub(r"\\(.)", r"\1", match.group("quoted"))))
        elif match.group("dquoted") is not None:
            steps.append(Step("key", re.sub(r"\\(.)", r"\1", match.group("dquoted"))))
        else:
            steps.append(Step("items"))
        position = match.end()
    return Selector(source, tuple(steps))
