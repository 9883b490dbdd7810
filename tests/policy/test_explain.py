"""`policy explain` answers exactly like the response filter: for every policy the project ships,
every response route and every recipient (declared, anonymous, unknown), the transform it names
per field is the one the field engine applies for the viewer the disclosure step builds."""

from __future__ import annotations

from pathlib import Path

import pytest

import privacy_middleware
from privacy_middleware.fields.engine import DisclosurePlan
from privacy_middleware.pipeline.disclose import response_viewer
from privacy_middleware.policy.access import Access
from privacy_middleware.policy.compile import compile_policy
from privacy_middleware.policy.explain import explain
from privacy_middleware.policy.load import load_policy
from privacy_middleware.principal import Principal

PACKAGE = Path(privacy_middleware.__file__).parent
ROOT = PACKAGE.parents[1]
POLICIES = sorted(
    [
        PACKAGE / "demo" / "policy.toml",
        *(ROOT / "examples" / "policies").glob("*.toml"),
        *(PACKAGE / "integrations").glob("*/preset.toml"),
    ]
)


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_explain_names_the_transform_the_engine_applies(path: Path) -> None:
    policy = load_policy(path)
    access = Access(policy)
    anonymous = policy.identity.anonymous_recipient
    compared = 0
    for spec in compile_policy(policy).entries():
        if spec.response is None or not spec.response.fields:
            continue
        route = f"{spec.method} {spec.template}"
        plan = DisclosurePlan.build(spec.response)
        for recipient in (*policy.recipients, anonymous, "undeclared-recipient"):
            principal = None if recipient == anonymous else Principal("p", None, recipient, None)
            applied = plan.transforms(response_viewer(access, principal, anonymous))
            explained = tuple(view.transform for view in explain(policy, recipient, route))
            assert explained == applied, (route, recipient)
            compared += len(applied)
    assert compared > 0
