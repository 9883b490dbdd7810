"""The consent banner script: served by the middleware, within its size budget, configured from the
policy (purposes, cookie patterns, strings in the visitor's language)."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess

import pytest

from support.demo import Demo

pytestmark = pytest.mark.anyio

BUDGET = 25 * 1024


def embedded_config(script: str) -> dict[str, object]:
    found = re.search(r"window\.CookieConsent, (\{.*\})\);\s*$", script, re.S)
    assert found is not None
    config: dict[str, object] = json.loads(found.group(1))
    return config


async def test_banner_script_and_stylesheet_fit_the_gzip_budget(demo: Demo) -> None:
    script = await demo.client.get("/privacy/consent.js")
    css = await demo.client.get("/privacy/consent.css")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    size = len(gzip.compress(script.content, 9)) + len(gzip.compress(css.content, 9))
    assert size <= BUDGET, f"banner is {size} bytes gzipped, over the {BUDGET} budget"
    assert "Released under the MIT License" in script.text  # the vendored library keeps its licence notice


async def test_banner_asks_for_the_policys_choosable_purposes_with_their_cookies(demo: Demo) -> None:
    config = embedded_config((await demo.client.get("/privacy/consent.js")).text)
    purposes = {p["name"]: p for p in config["purposes"]}  # type: ignore[attr-defined]
    assert set(purposes) == {"analytics", "marketing"}
    assert purposes["analytics"]["cookies"] == ["_ga*"] and purposes["marketing"]["cookies"] == ["_fbp"]
    assert config["api"] == "/privacy" and config["lang"] == "en"
    german = embedded_config((await demo.client.get("/privacy/consent.js", headers={"accept-language": "de"})).text)
    assert german["lang"] == "de" and german["strings"]["accept_all"] == "Alle erlauben"  # type: ignore[index]


@pytest.mark.skipif(shutil.which("node") is None, reason="node checks the script's syntax")
async def test_banner_script_is_valid_javascript(demo: Demo, tmp_path: object) -> None:
    script = (await demo.client.get("/privacy/consent.js")).content
    result = subprocess.run(["node", "--check", "-"], input=script, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
