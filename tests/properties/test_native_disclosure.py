"""The native one-pass disclosure (fields/native.py, `_native.c`) gives exactly what the pure-Python
path gives: the bytes `orjson.dumps` writes after `FieldEngine.disclose`, the same report, the same
blocked-subject questions; and where it cannot be sure it declines (None), never guesses."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.errors import PrivacyError
from privacy_middleware.fields.engine import FieldEngine, Pseudonymiser, Viewer
from privacy_middleware.policy.access import Access
from privacy_middleware.policy.compile import CompiledBody, compile_policy
from privacy_middleware.policy.load import load_policy
from privacy_middleware.principal import Principal
from support.native import needs_native

pytestmark = needs_native

POLICY = load_policy(demo_policy_path())
ACCESS = Access(POLICY)
ROUTES = compile_policy(POLICY)


def _body(method: str, path: str, unknown: str = "drop") -> CompiledBody:
    found = ROUTES.match(method, path)
    assert found is not None and found[0].response is not None
    body = found[0].response
    if unknown == body.rules.unknown_fields:
        return body
    rules = body.rules.model_copy(update={"unknown_fields": unknown})
    return type(body)(**{**{name: getattr(body, name) for name in body.__slots__}, "rules": rules})


BODIES = {
    (route, unknown): _body("GET", path, unknown)
    for route, path in (("list", "/orders"), ("one", "/orders/ord_1"), ("me", "/me"))
    for unknown in ("drop", "keep", "error")
}
RECIPIENTS = ["logistics", "payment", "support", "analytics", "marketing", "nobody"]
BLOCKED = "cus_0002"

texts = st.one_of(
    st.sampled_from(
        [
            "Ada",
            "",
            "12 Marylebone Road",
            "pe1.k.abc",
            "pd1.x",
            "tok_x",
            "x7@privacy.invalid",
            "a@privacy.invalid.example",
            "Zoë «ß» 東京 🫖",
            'quote " back \\ slash /',
            "line\nbreak\ttab\x00nul\x1f\x7f",
            "\u2028",
        ]
    ),
    st.text(max_size=8),
)
numbers = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 17.0, 0.1, 1e-05, 1e-06, 1e16, 123456789012345.6, -0.0, 2**63, 2**64 - 1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
PERSONAL_KEYS = [
    "email",
    "name",
    "street",
    "city",
    "postal_code",
    "country",
    "phone",
    "number",
    "number_last4",
    "number_brand",
    "exp_month",
    "exp_year",
    "holder",
]
personal = st.one_of(
    st.dictionaries(st.sampled_from(PERSONAL_KEYS), scalars, max_size=7),
    st.dictionaries(st.sampled_from([*PERSONAL_KEYS, "loyalty", "Email", "NAME", "stréet"]), json_values, max_size=4),
    st.none(),
    scalars,
    st.lists(scalars, max_size=2),
)
subjects = st.one_of(
    st.sampled_from(["cus_0001", "cus_0002", "cus_0003", "", "cus_é", 'cus_"q']),
    st.integers(-5, 2**64 - 1),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
plain_order = st.fixed_dictionaries(
    {
        "id": st.text(max_size=6),
        "customer_id": st.sampled_from(["cus_0001", "cus_0002", "cus_0003", "cus_0004"]),
        "total": numbers,
        "items": st.lists(st.dictionaries(st.sampled_from(["sku", "qty"]), scalars), max_size=2),
        "customer": st.dictionaries(st.sampled_from(["email", "name"]), texts),
        "shipping_address": st.dictionaries(st.sampled_from(PERSONAL_KEYS[1:7]), texts),
        "billing_address": st.dictionaries(st.sampled_from(PERSONAL_KEYS[1:6]), texts),
        "payment": st.fixed_dictionaries(
            {"card": st.dictionaries(st.sampled_from(PERSONAL_KEYS[8:]), st.one_of(texts, st.integers(1, 2030)))}
        ),
    },
    optional={"note": texts, "created_at": texts},
)
odd_order = st.dictionaries(
    st.sampled_from(
        [
            "id",
            "customer_id",
            "note",
            "Note",
            "customer",
            "shipping_address",
            "billing_address",
            "payment",
            "extra",
            "Customer_ID",
            "nöte",
        ]
    ),
    st.one_of(personal, subjects, st.fixed_dictionaries({"card": personal})),
    max_size=9,
)
# Orders as a shop writes them most days: the native pass's own ground (few of them decline).
common_order = st.fixed_dictionaries(
    {
        "id": st.text(max_size=6),
        "customer_id": st.sampled_from(["cus_0001", "cus_0003", "cus_0004", ""]),
        "total": st.one_of(st.integers(-(2**63), 2**64 - 1), st.integers(0, 10**6).map(lambda cents: cents / 100)),
        "customer": st.dictionaries(st.sampled_from(["email", "name"]), texts),
        "shipping_address": st.dictionaries(st.sampled_from(PERSONAL_KEYS[1:7]), texts),
        "billing_address": st.one_of(st.none(), st.dictionaries(st.sampled_from(PERSONAL_KEYS[1:6]), texts)),
        "payment": st.fixed_dictionaries(
            {"card": st.dictionaries(st.sampled_from(PERSONAL_KEYS[8:]), st.one_of(texts, st.integers(1, 2030)))}
        ),
    },
    optional={"note": st.one_of(st.none(), texts), "items": st.lists(st.dictionaries(texts, scalars), max_size=2)},
)
orders = st.one_of(plain_order, plain_order.map(lambda o: {**o, "customer_id": None}), odd_order, scalars)
documents = st.one_of(
    st.fixed_dictionaries({"orders": st.lists(orders, max_size=5)}, optional={"next": texts, "count": numbers}),
    st.fixed_dictionaries({"orders": st.one_of(scalars, orders)}),
    orders,
)
profiles = st.dictionaries(
    st.sampled_from(["id", "email", "name", "phone", "birth_date", "marketing_opt_in", "Email", "x"]),
    st.one_of(subjects, scalars),
    max_size=7,
)


async def _both(
    body: CompiledBody, raw: bytes, recipient: str, caller: str | None, guest: bool = False
) -> tuple[Any, Any, list[str], list[str]]:
    """(the Python path's outcome, the native pass's, the subjects each asked about)."""
    engine = FieldEngine(POLICY, Pseudonymiser(b"p" * 32))
    claims = {"guest": True} if guest else {}
    principal = Principal(id=caller or recipient, subject=caller, recipient=recipient, purpose=None, claims=claims)
    viewer = Viewer(principal, recipient, ACCESS.grants(recipient))
    asked: tuple[list[str], list[str]] = ([], [])

    def blocked_for(log: list[str]) -> Any:
        async def blocked(subject: str) -> bool:
            log.append(subject)
            return subject == BLOCKED

        return blocked

    reference: Any
    try:
        document = orjson.loads(raw)
        report = await engine.disclose(body, document, viewer, blocked_for(asked[0]))
        reference = (orjson.dumps(document), report)
    except (PrivacyError, orjson.JSONDecodeError, AttributeError) as error:
        reference = ("failed", type(error).__name__)
    got = await engine.disclose_bytes(body, raw, viewer, blocked_for(asked[1]))
    return reference, got, asked[0], asked[1]


def _dumps(document: Any) -> bytes:
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:  # a lone surrogate: not a body a shop could send
        assume(False)
        raise


def _check(body: CompiledBody, raw: bytes, recipient: str, caller: str | None, guest: bool = False) -> Any:
    got = _compare(body, raw, recipient, caller, guest)
    event("native pass" if got is not None else "declined")  # how often each ran: --hypothesis-show-statistics
    return got


def _compare(body: CompiledBody, raw: bytes, recipient: str, caller: str | None, guest: bool = False) -> Any:
    reference, got, asked_python, asked_native = asyncio.run(_both(body, raw, recipient, caller, guest))
    if got is not None:
        assert reference[0] != "failed", reference
        assert got[0] == reference[0]  # byte for byte
        assert got[1] == reference[1]  # the same report: categories, subjects, counts
        assert set(asked_native) == set(asked_python)  # the same blocked-subject questions
    return got


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents,
    st.sampled_from(["drop", "keep", "error"]),
    st.sampled_from(RECIPIENTS),
    st.sampled_from([None, "cus_0001", "logistics-co"]),
    st.booleans(),
)
def test_native_disclosure_of_orjson_dumped_lists_is_the_python_paths(
    document: Any, unknown: str, recipient: str, caller: str | None, guest: bool
) -> None:
    _check(BODIES[("list", unknown)], _dumps(document), recipient, caller, guest)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries({"orders": st.lists(common_order, max_size=4)}),
    st.sampled_from(["drop", "keep", "error"]),
    st.sampled_from(["logistics", "payment", "nobody"]),
    st.sampled_from([None, "logistics-co"]),
)
def test_native_disclosure_of_common_order_lists_is_the_python_paths(
    document: Any, unknown: str, recipient: str, caller: str | None
) -> None:
    _check(BODIES[("list", unknown)], _dumps(document), recipient, caller)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders, st.sampled_from(RECIPIENTS), st.sampled_from([None, "cus_0001"]))
def test_native_disclosure_of_one_record_is_the_python_paths(document: Any, recipient: str, caller: str | None) -> None:
    _check(BODIES[("one", "drop")], _dumps(document), recipient, caller)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles, st.sampled_from(RECIPIENTS), st.sampled_from([None, "cus_0001", "cus_0009"]))
def test_native_disclosure_of_a_profile_is_the_python_paths(document: Any, recipient: str, caller: str | None) -> None:
    _check(BODIES[("me", "drop")], _dumps(document), recipient, caller)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries({"orders": st.lists(plain_order, max_size=3)}),
    st.one_of(st.none(), st.integers(0, 4)),
    st.booleans(),
    st.sampled_from(["logistics", "payment"]),
    st.data(),
)
def test_native_disclosure_of_any_spelling_is_the_python_paths_or_declined(
    document: Any, indent: int | None, ascii_only: bool, recipient: str, data: st.DataObject
) -> None:
    """Bodies not written by orjson (whitespace, escapes, other number forms, edits that break the
    JSON): the native pass gives the Python path's bytes, or None."""
    raw = json.dumps(document, indent=indent, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    edit = data.draw(st.sampled_from(["none", "cut", "byte", "number"]))
    if edit == "cut" and raw:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif edit == "byte" and raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1 :]
    elif edit == "number":
        spelling = data.draw(
            st.sampled_from([b"1.50", b"-0", b"1E2", b"01", b"1e-7", b"0.000001", b"1.", b".5", b"-", b"2e0"])
        )
        raw = raw.replace(b'"orders"', b'"count":' + spelling + b',"orders"', 1)
    _check(BODIES[("list", "drop")], raw, recipient, None)


@given(st.one_of(numbers, st.text(max_size=12)))
def test_a_value_the_native_pass_copies_is_written_as_orjson_writes_it(value: Any) -> None:
    raw = _dumps({"orders": [], "count": value})
    assume(orjson.loads(raw) is not None)
    _check(BODIES[("list", "drop")], raw, "logistics", None)


def _order(i: int) -> dict[str, Any]:
    return {
        "id": f"ord_{i}",
        "customer_id": f"cus_{i % 3 + 3:04d}",  # never the blocked cus_0002
        "total": 17.5,
        "customer": {"email": f"c{i}@example.com", "name": "Ada"},
        "shipping_address": {"name": "Ada", "street": "12 Marylebone Road", "phone": "+44 20 7946 0018"},
        "billing_address": {"name": "Ada", "city": "London"},
        "payment": {"card": {"number_last4": "4242", "exp_year": 2030}},
        "note": "Ring twice.",
    }


@pytest.mark.parametrize("recipient", ["logistics", "payment", "nobody"])
def test_the_common_case_takes_the_native_pass(recipient: str) -> None:
    raw = orjson.dumps({"orders": [_order(i) for i in range(5)], "count": 5})
    got = _compare(BODIES[("list", "drop")], raw, recipient, None)
    assert got is not None
    if recipient == "logistics":
        assert orjson.loads(got[0])["orders"][0] == {
            "id": "ord_0",
            "total": 17.5,
            "customer": {},
            "shipping_address": {"name": "Ada", "street": "12 Marylebone Road", "phone": "+44 20 7946 0018"},
            "billing_address": {},
            "payment": {"card": {}},
        }


@pytest.mark.parametrize(
    ("edit", "caller"),
    [
        (lambda o: {**o, "customer": {**o["customer"], "loyalty": "gold"}}, None),  # unknown key, personal object
        (lambda o: {**o, "Note": "x"}, None),  # a key differing from a rule's by case
        (lambda o: {**o, "shipping_address": {"street": "pe1.k.abc"}}, None),  # an envelope kept
        (lambda o: {**o, "shipping_address": "12 Marylebone Road"}, None),  # not an object
        (lambda o: {**o, "customer_id": "cus_0002"}, None),  # a blocked subject
        (lambda o: {**o, "customer_id": "cus_0009"}, "cus_0009"),  # the caller's own record
        (lambda o: {**o, "customer_id": True}, None),  # a subject that is not text or an integer
    ],
)
def test_the_native_pass_declines_what_it_does_not_handle(edit: Any, caller: str | None) -> None:
    raw = orjson.dumps({"orders": [_order(1), edit(_order(2))]})
    assert _compare(BODIES[("list", "drop")], raw, "logistics", caller) is None


def test_escaped_or_duplicated_keys_are_declined() -> None:
    plain = orjson.dumps({"orders": [_order(1)]})
    escaped = plain.replace(b'"note"', b'"no\\u0074e"')
    duplicated = plain.replace(b'"note":', b'"note":"a","note":')
    for raw in (escaped, duplicated):
        assert _compare(BODIES[("list", "drop")], raw, "logistics", None) is None
