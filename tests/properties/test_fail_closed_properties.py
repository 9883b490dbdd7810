"""Property tests for the fail-closed readers (DESIGN.md §9), run by hypothesis.

- the strict JSON reader refuses exactly the documents with a duplicated key (any spelling,
  `\\u` escapes included) and never returns a document that means something else; it refuses
  exactly the documents nested deeper than its limit, brackets inside strings or not;
- every spelling the canonicaliser accepts of a planned route is placed on that route.

Examples per test: PRIVACY_PROPERTY_EXAMPLES (default 200 in the ordinary run); the dedicated run
uses 10,000: `PRIVACY_PROPERTY_EXAMPLES=10000 .venv/bin/python -m pytest tests/properties -q`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from privacy_middleware.asgi.strict_json import load_strict
from privacy_middleware.errors import PrivacyError
from privacy_middleware.routing.canonical import AliasTable

EXAMPLES = int(os.environ.get("PRIVACY_PROPERTY_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

KEYS = st.sampled_from(["number", "cvv", "Number", "n", "a:b", "birth_date", "é", "card"])


def encode_key(key: str, escaped: bool) -> str:
    return '"' + ("".join(f"\\u{ord(c):04x}" for c in key) if escaped else key.replace('"', '\\"')) + '"'


@st.composite
def documents(draw: Any, depth: int = 0) -> tuple[str, bool]:
    """Raw JSON text and whether it holds a duplicated key somewhere."""
    if depth > 3 or draw(st.booleans()):
        value = draw(st.one_of(st.integers(-5, 5), st.text(alphabet="ab:", max_size=4), st.none()))
        return json.dumps(value), False
    if draw(st.booleans()):
        items = draw(st.lists(documents(depth + 1), max_size=3))
        return "[" + ",".join(text for text, _ in items) + "]", any(dup for _, dup in items)
    keys = draw(st.lists(KEYS, max_size=4))
    members = []
    duplicate = len(set(keys)) < len(keys)
    for key in keys:
        text, inner = draw(documents(depth + 1))
        duplicate = duplicate or inner
        members.append(encode_key(key, draw(st.booleans())) + ":" + text)
    return "{" + ",".join(members) + "}", duplicate


@SETTINGS
@given(documents())
def test_strict_reader_refuses_exactly_the_duplicates(case: tuple[str, bool]) -> None:
    text, duplicate = case
    if duplicate:
        with pytest.raises(PrivacyError) as refused:
            load_strict(text.encode())
        assert refused.value.code == "duplicate_key"
    else:
        assert load_strict(text.encode()) == orjson.loads(text)


def nesting(text: str) -> int:
    """How deep the containers of a JSON text nest (as the parser reads it, strings skipped)."""
    document = orjson.loads(text)
    stack = [(document, 1)] if isinstance(document, dict | list) else []
    deepest = 0
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


@SETTINGS
@given(documents(), st.integers(1, 5), st.sampled_from(["", "[", "{[", "x{y"]))
def test_strict_reader_refuses_exactly_the_documents_nested_too_deep(
    case: tuple[str, bool], max_depth: int, brackets: str
) -> None:
    """Brackets inside strings (which the opener count that clears shallow bodies also counts) never
    hide or invent a level."""
    text, duplicate = case
    assume(not duplicate)
    text = '{"s":' + json.dumps(brackets) + ',"v":' + text + "}"
    if nesting(text) > max_depth:
        with pytest.raises(PrivacyError) as refused:
            load_strict(text.encode(), max_depth=max_depth)
        assert refused.value.code == "json_too_deep"
    else:
        assert load_strict(text.encode(), max_depth=max_depth) == orjson.loads(text)


PLANNED = [("POST", "/api/checkout"), ("GET", "/api/orders/{ref}"), ("GET", "/api/orders/export")]
TABLE = AliasTable((method, template, (method, template)) for method, template in PLANNED)


@st.composite
def spellings(draw: Any) -> tuple[str, str, tuple[str, str]]:
    method, template = draw(st.sampled_from(PLANNED))
    samples = st.sampled_from(["ord_1", "A7", "x-y"])
    segments = [s if s != "{ref}" else draw(samples) for s in template[1:].split("/")]
    out = ""
    for segment in segments:
        spelled = "".join(c.upper() if draw(st.booleans()) else c for c in segment)
        if draw(st.booleans()):
            spelled += ";" + draw(st.sampled_from(["x=1", "jsessionid=abc", ""]))
        out += draw(st.sampled_from(["/", "//", "/./", "\\"])) + spelled
    out += draw(st.sampled_from(["", "/", ".json", ".json/", "//"]))
    if out.startswith("\\"):
        out = "/" + out[1:]
    return method, out, (method, template)


@SETTINGS
@given(spellings())
def test_every_spelling_of_a_planned_route_is_placed_on_it(case: tuple[str, str, tuple[str, str]]) -> None:
    method, path, planned = case
    found = TABLE.place(method, path)
    assert found is not None and found[0] == planned, path
