"""Work hoisted to plan build gives what the per-request code gave: the prepared response header
edits equal the edits applied one by one, and a compiled key path finds what the selector walk finds."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.asgi.headers import DIGEST_HEADERS, ResponseEdits, get_header, merge_vary, replace, without
from privacy_middleware.policy.selectors import _walk, compile_selector

NAMES = [b"vary", b"Vary", b"cache-control", b"Cache-Control", b"content-length", b"etag", b"digest", b"x-a"]
VALUES = [b"", b"*", b"Accept", b"accept, cookie", b"private", b"no-store", b"max-age=60", b"12", b"Origin, *"]
headers_st = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=8)
extra_st = st.lists(
    st.tuples(st.sampled_from([b"consent-mode", b"privacy-trace"]), st.sampled_from(VALUES)), max_size=2
)


def edits_one_by_one(
    headers: list[tuple[bytes, bytes]],
    extra: list[tuple[bytes, bytes]],
    private: bool,
    changed: bool,
    length: int | None,
) -> list[tuple[bytes, bytes]]:
    """The edits as the middleware applied them per request before they were prepared per plan."""
    if private:
        headers = merge_vary(headers, "Authorization", "Cookie")
        cache_control = get_header(headers, b"cache-control") or b""
        if b"private" not in cache_control and b"no-store" not in cache_control:
            headers = replace(headers, b"cache-control", b"private")
        if changed:
            headers = without(headers, *DIGEST_HEADERS)
    if length is not None:
        headers = replace(headers, b"content-length", str(length).encode())
    return headers + extra


@given(headers_st, extra_st, st.booleans(), st.booleans(), st.one_of(st.none(), st.integers(0, 10**6)))
def test_prepared_header_edits_equal_the_edits_one_by_one(
    headers: list[tuple[bytes, bytes]],
    extra: list[tuple[bytes, bytes]],
    private: bool,
    changed: bool,
    length: int | None,
) -> None:
    before = list(headers)
    got = ResponseEdits(private).apply(headers, extra, changed=changed, length=length)
    assert got == edits_one_by_one(headers, extra, private, changed, length)
    assert headers == before  # the shop's list is not edited in place


json_st = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=3)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(json_st, st.sampled_from(["a", "$.a.b", "a.b.c", "b", "$['a'].c", "c.a"]))
def test_compiled_key_paths_find_what_the_walk_finds(document: Any, source: str) -> None:
    selector = compile_selector(source)
    walked = [(id(place.parent), place.key) for place in _walk(document, selector.steps)]
    assert [(id(place.parent), place.key) for place in selector.find(document)] == walked
    assert [(id(place.parent), place.key) for place in selector.locations(document)] == walked
