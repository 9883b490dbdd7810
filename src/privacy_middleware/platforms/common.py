"""What platform settings models share: comma-separated lists from the environment."""

from __future__ import annotations

from typing import Any


def split_list(value: Any) -> Any:
    """`a, b` -> ["a", "b"] (a variable holds a comma-separated list); lists pass as they are."""
    return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value
