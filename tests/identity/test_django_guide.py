"""The Django guide's policy is a valid policy (the guide's other pieces are tested where they live)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from privacy_middleware.policy.load import validate_policy

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "django.md"


def test_the_guides_policy_validates() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", GUIDE.read_text(), re.S)
    assert len(blocks) == 1
    policy = validate_policy(tomllib.loads(blocks[0]))
    assert policy.guests.checkouts[0].capability_location == "/api/order-status/{record}/{capability}/"
    assert [m.model for m in policy.adapter.models] == ["address.UserAddress", "auth.User"]
