from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.policy.selectors import SelectorError, compile_selector

DOC: dict[str, Any] = {
    "orders": [
        {"id": 1, "shipping": {"street": "1 A St"}, "lines": [{"sku": "a"}, {"sku": "b"}]},
        {"id": 2, "shipping": None},
    ],
    "odd.key": {"x": 1},
}


@pytest.mark.parametrize(
    ("selector", "values"),
    [
        ("$", [DOC]),
        ("$.orders[*].id", [1, 2]),
        ("orders[*].shipping.street", ["1 A St"]),
        ("$.orders[0].lines[*].sku", ["a", "b"]),
        ("$.orders[-1].id", [2]),
        ("$['odd.key'].x", [1]),
        ("$.orders[*].lines[*].*", ["a", "b"]),
        ("$.missing.path", []),
        ("$.orders[9].id", []),
    ],
)
def test_selector_values(selector: str, values: list[Any]) -> None:
    assert list(compile_selector(selector).values(DOC)) == values


@pytest.mark.parametrize("bad", ["", "$.", "$.a[", "$..a", "a b", "$[x]"])
def test_bad_selectors_are_refused(bad: str) -> None:
    with pytest.raises(SelectorError):
        compile_selector(bad)


def test_locations_allow_in_place_rewrite() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}]}
    for location in compile_selector("a[*].b").locations(doc):
        location.set(location.get() * 10)
    assert doc == {"a": [{"b": 10}, {"b": 20}]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=15,
)


@given(json_values, st.sampled_from(["$.a", "$.a[*]", "$.*", "$.a.b[0]", "$[*].a", "$.*.*"]))
def test_selectors_never_crash_on_arbitrary_json(document: Any, selector: str) -> None:
    compiled = compile_selector(selector)
    for location in compiled.locations(document):
        assert location.get() is not None or location.get() is None


@given(json_values, st.sampled_from(["$.a", "$.a[*]", "$.*", "$.a.b[0]", "$[*].a", "$.*.*", "$", "$.a.b"]))
def test_places_are_the_locations_as_pairs(document: Any, selector: str) -> None:
    compiled = compile_selector(selector)
    found = [(location.parent, location.key) for location in compiled.find(document)]
    places = compiled.places(document)
    assert [(id(parent), key) for parent, key in places] == [(id(parent), key) for parent, key in found]
