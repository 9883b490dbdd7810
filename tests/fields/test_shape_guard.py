"""The shape guard's memo of undeclared keys (keys that fold to no declared key) stays bounded, and a
key it has seen is still refused when it comes back spelled like a declared one."""

from __future__ import annotations

import pytest

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.errors import PrivacyError
from privacy_middleware.fields.shape_guard import ShapeGuard
from privacy_middleware.policy.compile import compile_policy
from privacy_middleware.policy.load import load_policy


def checkout_guard() -> ShapeGuard:
    found = compile_policy(load_policy(demo_policy_path())).match("POST", "/checkout")
    assert found is not None and found[0].request is not None
    return ShapeGuard(found[0].request)


def test_a_body_with_many_undeclared_keys_does_not_grow_the_memo_past_its_bound() -> None:
    guard = checkout_guard()
    guard.check({f"extra_{i}": i for i in range(10_000)})
    for i in range(300):
        guard.check({f"other_{i}": i})
    assert len(guard.root.benign) <= 256


def test_a_remembered_undeclared_key_does_not_hide_an_ambiguous_one() -> None:
    guard = checkout_guard()
    guard.check({"items": [], "note": "x"})
    guard.check({"items": [], "note": "x"})  # served from the memo
    with pytest.raises(PrivacyError) as refused:
        guard.check({"items": [], "Payment": {}})
    assert refused.value.code == "ambiguous_key"
