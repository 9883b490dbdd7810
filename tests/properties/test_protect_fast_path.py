"""Request protection along plain key paths (the inline look-ups the checkout takes) rewrites a body
and refuses it exactly as the selector walk does: the same document, the same report, the same
refusal (code, status, message), for the demo checkout's rules on bodies of any shape."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.errors import PrivacyError
from privacy_middleware.fields import engine as engine_module
from privacy_middleware.fields.engine import FieldEngine, Pseudonymiser
from privacy_middleware.policy.compile import compile_policy
from privacy_middleware.policy.load import load_policy
from privacy_middleware.principal import Principal

POLICY = load_policy(demo_policy_path())
CHECKOUT = compile_policy(POLICY).match("POST", "/checkout")
assert CHECKOUT is not None
BODY = CHECKOUT[0].request
assert BODY is not None and engine_module.plain_paths(BODY) is not None


class _Sealer:
    """Seals as `pe1.<category>.<value>`: deterministic, so two runs give equal documents."""

    def encrypt(self, value: str, category: str) -> str:
        return f"pe1.{category}.{value}"

    def encrypt_deterministic(self, value: str, category: str) -> str:
        return f"pd1.{category}.{value}"

    def encrypt_values(self, values: Sequence[str], categories: tuple[str, ...]) -> list[str]:
        return [self.encrypt(value, category) for value, category in zip(values, categories, strict=True)]


class _Cipher:
    def __init__(self) -> None:
        self.sealer = _Sealer()

    def cached_sealer(self, subject: str) -> _Sealer:
        return self.sealer

    async def subject_sealer(self, subject: str) -> _Sealer:
        return self.sealer


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242424242424241",
            "5555-5555-5555-4444",
            "378282246310005",
            "12 Marylebone Road",
            "+44 20 7946 0018",
            "not a phone!",
            "ada@example.com",
            "ada@",
            "pe1.k.abc",
            "tok_x",
            "",
            "Ada",
        ]
    ),
    st.text(max_size=6),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.dictionaries(st.sampled_from(["number", "cvv", "holder", "name", "x"]), inner, max_size=3),
    ),
    max_leaves=4,
)
VALID = st.sampled_from(["4242424242424242", "4242 4242 4242 4242", "378282246310005"])
NUMBERS = st.one_of(VALID, VALID, VALID, VALUES)  # mostly valid: the rest of the body is then checked
CARD = st.fixed_dictionaries(
    {"number": NUMBERS},
    optional={key: VALUES for key in ("cvv", "holder", "exp_month", "number_last4", "number_brand", "CVV", "Number")},
)
ADDRESS = st.dictionaries(st.sampled_from(["name", "street", "phone", "city", "Street"]), VALUES, max_size=5)
DOCUMENTS = st.fixed_dictionaries(
    {
        "payment": st.one_of(
            *[st.fixed_dictionaries({"card": CARD})] * 3, st.fixed_dictionaries({}, optional={"card": VALUES})
        )
    },
    optional={
        "shipping_address": st.one_of(ADDRESS, VALUES),
        "billing_address": st.one_of(ADDRESS, VALUES),
        "customer": st.one_of(st.dictionaries(st.sampled_from(["email", "name"]), VALUES, max_size=2), VALUES),
        "note": VALUES,
    },
)
CUSTOMER = Principal(id="cus_1", subject="cus_1", recipient="customer", purpose=None)
PRINCIPALS = st.sampled_from(
    [CUSTOMER, CUSTOMER, CUSTOMER, None, Principal(id="x", subject=None, recipient="customer", purpose=None)]
)


def _protect(document: Any, principal: Principal | None) -> tuple[Any, Any]:
    engine = FieldEngine(POLICY, Pseudonymiser(b"p" * 32), _Cipher())  # type: ignore[arg-type]
    try:
        report = asyncio.run(engine.protect_request(BODY, document, principal))
    except PrivacyError as error:
        return document, (error.code, error.status, error.message)
    return document, (report.transformed, report.categories, report.subjects)


@settings(max_examples=400, deadline=None)
@given(DOCUMENTS, PRINCIPALS)
def test_plain_paths_protect_as_the_selector_walk(document: dict[str, Any], principal: Principal | None) -> None:
    fast = _protect(copy.deepcopy(document), principal)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_module, "plain_paths", lambda body: None)  # every field found by Selector.find
        walked = _protect(copy.deepcopy(document), principal)
    assert fast == walked
