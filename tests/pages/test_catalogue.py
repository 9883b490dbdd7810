"""The pages' string catalogue: one file, every language complete."""

from __future__ import annotations

import re
import tomllib
from importlib import resources


def test_every_language_has_every_string_the_templates_use() -> None:
    package = resources.files("privacy_middleware.api.pages")
    catalogue = tomllib.loads(package.joinpath("strings.toml").read_text(encoding="utf-8"))
    assert len(catalogue) >= 2
    keys = set(catalogue["en"])
    for lang, table in catalogue.items():
        assert set(table) == keys, lang
    used: set[str] = set()
    for item in package.joinpath("templates").iterdir():
        used.update(re.findall(r't\("([a-z_]+\.[a-z_]*[a-z])"', item.read_text(encoding="utf-8")))
    assert used and used <= keys, sorted(used - keys)
