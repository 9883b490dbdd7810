"""A strict reader for request bodies: one meaning per document, or a refusal.

orjson keeps the last of two equal keys and parses up to 1,024 levels, so a body can mean one
thing to the middleware and another to a shop that keeps the first key or chokes on the depth.
This reader parses with orjson, then walks the result once to measure its depth and count its keys.
A duplicate key can only hide where the raw bytes hold more key separators than the parsed objects
hold keys; only then (or when `\\u` escapes make the count inexact) is the body parsed a second
time, with the standard library's `object_pairs_hook`, to find the duplicate and name its path.

Where the native extension is built, one pass of its parser first reads the raw body (no key
twice in an object, no container past the depth limit) and clears most bodies alone. Otherwise,
or when it is not certain, both checks first run at C speed (`_fast_verdict`): the colons of the
raw body against those of orjson's dump of the parsed document (a colon is never escaped, so they
differ only when a pair was dropped), and the bracket depth of the raw body with its strings
removed. Only a body these flag is walked in Python, to confirm the finding and name its path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from ..errors import PrivacyError
from ..fields import native
from ..fields.shape_guard import field_path

MAX_JSON_DEPTH = 32
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_ESCAPED = re.compile(rb"\\.", re.DOTALL)
# Keeps only quotes, backslashes and brackets: the bytes that decide the nesting depth.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"\\[]{}')
# The same verdict as `_fast_verdict` in one C pass where the extension is built; where it is not
# certain (False) `_fast_verdict` and the walks decide (tests/properties/test_native_prefilter.py).
_native_verdict = native.strict_verdict


def too_deep(path: str, limit: int) -> PrivacyError:
    return PrivacyError(
        "json_too_deep",
        f"The body nests deeper than {limit} levels.",
        422,
        extra={"field": path, "max_depth": limit},
    )


def duplicate_key(path: str) -> PrivacyError:
    return PrivacyError(
        "duplicate_key",
        f"The key at {path} appears more than once in its object.",
        422,
        extra={"field": path},
    )


def raw_depth(body: bytes) -> int:
    """The bracket depth of raw JSON, strings skipped (used when orjson refuses a deep body)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b"", body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class _Census:
    __slots__ = ("colons", "keys", "limit")

    def __init__(self, limit: int) -> None:
        self.keys = 0
        self.colons = 0
        self.limit = limit

    def walk(self, node: Any, depth: int, path: list[str | int]) -> None:
        if depth > self.limit:
            raise too_deep(field_path(path), self.limit)
        if isinstance(node, dict):
            self.keys += len(node)
            for key, value in node.items():
                self.colons += key.count(":")
                if isinstance(value, str):
                    self.colons += value.count(":")
                elif isinstance(value, dict | list):
                    path.append(key)
                    self.walk(value, depth + 1, path)
                    path.pop()
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    self.colons += value.count(":")
                elif isinstance(value, dict | list):
                    path.append(index)
                    self.walk(value, depth + 1, path)
                    path.pop()


def _find_duplicate(body: bytes) -> str | None:
    """The path of the first duplicated key, by a second, pair-preserving parse."""
    duplicated: dict[int, str] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result and id(result) not in duplicated:
                duplicated[id(result)] = key
            result[key] = value
        return result

    document = json.loads(body, object_pairs_hook=pairs)
    if not duplicated:
        return None

    def locate(node: Any, path: list[str | int]) -> str | None:
        if isinstance(node, dict):
            if id(node) in duplicated:
                return field_path([*path, duplicated[id(node)]])
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            return None
        for key, value in items:
            found = locate(value, [*path, key])
            if found is not None:
                return found
        return None

    return locate(document, [])


def _depth_within(body: bytes, limit: int) -> bool:
    """True when the raw body nests at most `limit` containers deep (strings skipped), in C-speed passes:
    each pass removes every innermost empty pair, so the number of passes is the depth."""
    structure = body.translate(None, _NOT_STRUCTURE)
    if structure.count(b"{") + structure.count(b"[") <= limit:
        return True  # each container opens with one of these bytes (never escaped): no deeper nesting
    if b"\\" in structure:
        structure = _ESCAPED.sub(b"", body).translate(None, _NOT_STRUCTURE)
    # Strings without brackets are now empty pairs of quotes; when removing those leaves no quote,
    # no string held a bracket (a string that does leaves an odd run of quotes behind).
    skeleton = structure.replace(b'""', b"")
    if b'"' in skeleton:
        # Without escapes every quote opens or closes a string: the even pieces are outside strings.
        skeleton = b"".join(structure.split(b'"')[::2])
    for _ in range(limit):
        if not skeleton:
            return True
        # A marker between the two replacements keeps one pass from peeling two levels.
        skeleton = skeleton.replace(b"[]", b"\0").replace(b"{}", b"\0").replace(b"\0", b"")
    return not skeleton


def _has_u_escape(body: bytes) -> bool:
    """`b"\\\\u" in body`; a backslash is looked for first (memchr), which clears most bodies at once."""
    return b"\\" in body and b"\\u" in body


def _fast_verdict(body: bytes, document: Any, max_depth: int) -> bool:
    """True when the body certainly has no duplicate key and no nesting past `max_depth`."""
    if _has_u_escape(body) or not _depth_within(body, max_depth):
        return False
    return body.count(b":") == orjson.dumps(document).count(b":")


def load_strict(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON body; 422 for a duplicated key or a depth over `max_depth`.

    Raises `orjson.JSONDecodeError` for a body that is not JSON at all (the caller decides).
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        if raw_depth(body) > max_depth:
            raise too_deep("$", max_depth) from None
        raise
    if (_native_verdict is not None and type(body) is bytes and _native_verdict(body, max_depth)) or _fast_verdict(
        body, document, max_depth
    ):
        return document
    census = _Census(max_depth)
    census.walk(document, 1, [])
    if _has_u_escape(body) or body.count(b":") - census.colons != census.keys:
        found = _find_duplicate(body)
        if found is not None:
            raise duplicate_key(found)
    return document
