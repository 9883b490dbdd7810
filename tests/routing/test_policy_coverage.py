"""`privacy-middleware policy coverage --app module:attr` on the demo, a FastAPI app and a DRF app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from privacy_middleware.cli import main as cli
from privacy_middleware.demo.run import demo_policy_path
from support import shops

DEMO = "privacy_middleware.demo.shop:DemoShop"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli(["policy", "coverage", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def shops_policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(shops.POLICY_TOML)
    return str(path)


def test_coverage_of_a_fastapi_app(capsys: pytest.CaptureFixture[str], shops_policy: str) -> None:
    code, report = run(capsys, "--app", "support.shops:fastapi_app", "--file", shops_policy)
    assert code == 0 and report["router"] == "starlette"
    by_path = {route["path"]: route for route in report["routes"]}
    assert by_path["/api/checkout"]["planned"] == ["POST /api/checkout"]
    assert by_path["/api/orders/{ref}"]["planned"] == ["GET /api/orders/{ref}"]
    assert by_path["/api/products"]["planned"] == []
    assert report["missing"] == [] and report["uncovered"] == {}


def test_coverage_of_a_drf_app_lists_format_suffix_aliases(
    capsys: pytest.CaptureFixture[str], shops_policy: str
) -> None:
    from django.conf import settings

    previous = settings.ROOT_URLCONF if settings.configured else None
    try:
        code, report = run(capsys, "--app", "support.shops:drf_app", "--file", shops_policy)
    finally:
        if previous is not None:
            shops.configure_django(previous)
    assert code == 0 and report["router"] == "django"
    planned = [route for route in report["routes"] if route["planned"]]
    # The router's own route and its `.json` twin both run the planned handler.
    checkout = [r for r in planned if "POST /api/checkout" in r["planned"]]
    assert len(checkout) == 2 and any("format" in r["path"] for r in checkout)
    aliases = {a["path"]: a["covered"] for a in report["aliases"]["POST /api/checkout"]}
    assert aliases["/api/checkout.json"] is True
    assert {a["path"] for a in report["aliases"]["GET /api/orders/{ref}"]} >= {"/api/orders/1.json"}
    assert report["uncovered"] == {}


def test_coverage_of_the_demo(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    from privacy_middleware.demo import shop as demo_shop

    monkeypatch.setattr(demo_shop, "COVERAGE_APP", demo_shop.DemoShop(tmp_path).app, raising=False)
    code, report = run(capsys, "--app", "privacy_middleware.demo.shop:COVERAGE_APP", "--file", str(demo_policy_path()))
    assert code == 0 and report["router"] == "starlette"
    by_path = {route["path"]: route for route in report["routes"]}
    assert by_path["/checkout"]["planned"] == ["POST /checkout"]
    assert by_path["/products"]["planned"] == []
    assert "GET /orders/{order_id}" in by_path["/orders/{order_id}"]["planned"]
    assert report["uncovered"] == {}


def test_every_alias_of_a_plain_asgi_app_is_covered_so_production_starts(tmp_path: Path, monkeypatch: Any) -> None:
    from privacy_middleware.policy.load import load_policy
    from privacy_middleware.routing.coverage import check_at_start, coverage

    monkeypatch.setenv("PRIVACY_ENV", "production")
    report = coverage(shops.LenientShop(), load_policy(demo_policy_path()))
    assert report.router == "canonical" and report.uncovered == {}
    assert ("/checkout/", True) in report.aliases["POST /checkout"]
    check_at_start(shops.LenientShop(), load_policy(demo_policy_path()))  # does not raise
