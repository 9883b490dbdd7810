"""Work hoisted to plan build gives what the per-request code gave: the prepared response header
edits equal the edits applied one by one, a compiled key path finds what the selector walk finds, and a
response disclosure plan with its work hoisted (unknown keys found per group, records as a list, objects
emptied in one call) rewrites a document and reports exactly as the plan without it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from privacy_middleware.asgi.headers import DIGEST_HEADERS, ResponseEdits, get_header, merge_vary, replace, without
from privacy_middleware.errors import PrivacyError
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
    edits = ResponseEdits(private)
    expected = edits_one_by_one(headers, extra, private, changed, length)
    got = edits.apply(headers, extra, changed=changed, length=length)
    assert got == expected
    assert headers == before  # the shop's list is not edited in place
    got.append((b"x-later", b"1"))  # a caller editing what it got does not edit what the plan keeps
    again = edits.apply(list(headers), extra, changed=changed, length=length)  # the remembered edits
    assert again == expected
    other_length = edits.apply(headers, [], changed=changed, length=None if length is None else length + 1)
    assert other_length == edits_one_by_one(headers, [], private, changed, None if length is None else length + 1)
    listed = [[key, value] for key, value in headers]  # a server giving each header as a list: not a key
    got_listed = edits.apply(listed, extra, changed=changed, length=length)  # type: ignore[arg-type]
    assert [tuple(header) for header in got_listed] == expected


def test_header_edits_remember_only_lists_that_name_nobody() -> None:
    """A shop's header list with a cookie, a location or a tag is edited each time and never kept."""
    edits = ResponseEdits(True)
    plain = [(b"Content-Type", b"application/json"), (b"content-length", b"14")]
    for headers in (
        [*plain, (b"set-cookie", b"sid=abc; HttpOnly")],
        [*plain, (b"Location", b"/customers/cus_1")],
        [*plain, (b"etag", b'"v1"')],
    ):
        got = edits.apply(headers, [], changed=True, length=20)
        assert got == edits_one_by_one(headers, [], True, True, 20)
    assert not edits._edited
    assert edits.apply(plain, [], changed=True, length=20) == edits_one_by_one(plain, [], True, True, 20)
    assert list(edits._edited) == [(tuple(plain), True, True)]


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


# --- response disclosure: the plan with its work hoisted gives what the unhoisted plan gives ----------

ADDRESS = ["name", "street", "city", "postal_code", "country", "phone"]
ORDER_KEYS = ["id", "customer_id", "note", "customer", "shipping_address", "billing_address", "payment", "extra"]
PERSONAL_KEYS = ["email", "name", "street", "city", "phone", "number", "number_last4", "holder", "card", "loyalty"]
scalar_st = st.one_of(
    st.none(),
    st.integers(-2, 2),
    st.sampled_from(
        ["Ada", "", "pe1.k.abc", "tok_x", "ada@example.com", "c_1", "cus_0001", "x7@privacy.invalid", "a\x00pe1.b"]
    ),
)
personal_st = st.one_of(
    scalar_st,
    st.dictionaries(st.sampled_from(PERSONAL_KEYS), st.one_of(scalar_st, st.dictionaries(st.just("a"), scalar_st))),
)
record_st = st.one_of(
    st.dictionaries(st.sampled_from(ORDER_KEYS), personal_st, max_size=8),
    st.fixed_dictionaries({"customer_id": st.sampled_from(["cus_0001", "cus_0002", 7])}).map(
        lambda r: {**r, "payment": {"card": {"number_last4": "4242", "holder": "Ada"}}, "customer": {"email": "x"}}
    ),
    st.fixed_dictionaries(
        {
            "customer_id": st.sampled_from(["cus_0001", "cus_0003"]),
            "shipping_address": st.fixed_dictionaries(
                {k: st.sampled_from(["1 Tea Lane", "tok_9", "x@privacy.invalid", "b\x00tok_"]) for k in ADDRESS},
                optional={"loyalty": st.just("gold")},
            ),
        }
    ),
    scalar_st,
)
orders_st = st.one_of(st.fixed_dictionaries({"orders": st.lists(record_st, max_size=4)}), record_st)


async def _disclosed(hoist: bool, action: str, recipient: str, subject: str | None, document: Any) -> Any:
    import copy

    from privacy_middleware.demo.run import demo_policy_path
    from privacy_middleware.fields.engine import DisclosurePlan, FieldEngine, Pseudonymiser, Viewer
    from privacy_middleware.policy.access import Access
    from privacy_middleware.policy.load import load_policy
    from privacy_middleware.principal import Principal

    policy = _DEMO.get("policy")
    if policy is None:
        policy = _DEMO["policy"] = load_policy(demo_policy_path())
    access = Access(policy)
    body = _DEMO.get(("body", action))
    if body is None:
        from privacy_middleware.policy.compile import compile_policy

        found = compile_policy(policy).match("GET", "/orders")
        assert found is not None and found[0].response is not None
        spec = found[0]
        rules = spec.response.rules.model_copy(update={"unknown_fields": action})
        body = _DEMO[("body", action)] = type(spec.response)(**{**_fields_of(spec.response), "rules": rules})
    engine = FieldEngine(policy, Pseudonymiser(b"p" * 32))
    engine._plans[id(body)] = DisclosurePlan.build(body, hoist=hoist)
    principal = Principal(id=subject or recipient, subject=subject, recipient=recipient, purpose=None)
    viewer = Viewer(principal, recipient, access.grants(recipient))
    document = copy.deepcopy(document)

    async def blocked(who: str) -> bool:
        return who == "cus_0002"

    try:
        report = await engine.disclose(body, document, viewer, blocked)
    except PrivacyError as error:
        return ("refused", error.code, error.status)
    except AttributeError as error:  # a record that is not an object: the middleware answers 500 for it
        return ("failed", str(error))
    return document, report


def _fields_of(body: Any) -> dict[str, Any]:
    return {name: getattr(body, name) for name in body.__slots__}


_DEMO: dict[Any, Any] = {}


@settings(max_examples=300, deadline=None)
@given(
    orders_st,
    st.sampled_from(["drop", "keep", "error"]),
    st.sampled_from(["logistics", "support", "payment", "nobody", "customer"]),
    st.sampled_from([None, "cus_0001"]),
)
def test_hoisted_disclosure_plan_gives_what_the_unhoisted_plan_gives(
    document: Any, action: str, recipient: str, subject: str | None
) -> None:
    import asyncio

    hoisted = asyncio.run(_disclosed(True, action, recipient, subject, document))
    reference = asyncio.run(_disclosed(False, action, recipient, subject, document))
    assert hoisted == reference


@given(st.text(alphabet="0123456789 -x", max_size=20))
def test_card_brand_kept_per_prefix_is_the_brand_the_rules_give(pan: str) -> None:
    from privacy_middleware.crypto.cards import card_brand, scan_brand

    assert card_brand(pan) == scan_brand(pan)


@given(st.binary(max_size=80), st.text(max_size=12), st.one_of(st.text(max_size=40), st.integers()))
def test_pseudonym_from_kept_hmac_states_is_the_hmac(secret: bytes, scope: str, value: object) -> None:
    import hashlib
    import hmac

    from privacy_middleware.fields.engine import Pseudonymiser

    key = hmac.new(secret, b"pseudonym:" + scope.encode(), hashlib.sha256).digest()
    expected = "ps_" + hmac.digest(key, str(value).encode(), "sha256").hex()[:32]
    pseudonymiser = Pseudonymiser(secret)
    assert pseudonymiser.pseudonym(value, scope) == expected
    assert pseudonymiser.pseudonym(value, scope) == expected  # the kept states are copied, never consumed
