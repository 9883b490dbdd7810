"""Every seed policy file loads, compiles and passes `privacy-middleware policy check`."""

from __future__ import annotations

import pytest

from privacy_middleware.cli import main
from privacy_middleware.policy.compile import compile_policy
from privacy_middleware.policy.load import load_policy
from support.conformance import NAMES, SEEDS, policy_path


@pytest.mark.parametrize("seed", SEEDS)
def test_policy_check_passes_on_each_seed_policy(seed: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(policy_path(seed))]) == 0
    out = capsys.readouterr().out
    assert f"{policy_path(seed).name}: OK" in out


@pytest.mark.parametrize("seed", SEEDS)
def test_each_seed_policy_plans_the_demo_shops_personal_data_routes(seed: str) -> None:
    policy = load_policy(policy_path(seed))
    table = compile_policy(policy)
    for method, path in [
        ("POST", "/checkout"),
        ("GET", "/orders"),
        ("GET", "/orders/ord_1"),
        ("GET", "/me"),
        ("POST", "/track"),
        ("POST", "/auth/login"),
    ]:
        assert table.match(method, path) is not None, (method, path)
    assert policy.policy.tenant == f"seed-{seed[:3]}"
    assert all(rule.reason for rule in policy.retention)
    assert policy.audit.logins and policy.audit.strict_categories


def test_the_seed_policies_are_exactly_the_five_seeds() -> None:
    files = sorted(p.stem for p in policy_path(SEEDS[0]).parent.glob("*.toml"))
    assert files == sorted(NAMES.values())
    for seed in SEEDS:
        assert policy_path(seed).read_text().startswith(f"# Seed {seed}.txt:")
