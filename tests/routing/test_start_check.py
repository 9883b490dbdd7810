"""The start-up route check, end to end: a planned route reachable through a spelling its plan does
not cover stops `serve` under PRIVACY_ENV=production (with the route and the spelling in the
message) and is a warning otherwise; one handler registered on two routes gets one plan on both."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import privacy_middleware
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.serve import build_proxy_app
from privacy_middleware.settings import Settings
from support import shops

# `/api/checkout.json` has a plan of its own that does not protect the card: a shop that routes
# `.json` to the checkout (Express, DRF) would get the card in clear through that alias.
SHADOWED = """
[policy]
name = "t"
version = "1"
effective_date = 2026-01-01

[categories]
"user.financial.card.number" = {}
"user.profile.note" = {}

[purposes.order_fulfilment]
legal_basis = "contract"

[[routes]]
method = "POST"
path = "/api/checkout"
[[routes.request.fields]]
select = "card.number"
category = "user.financial.card.number"
transform = "encrypt"

[[routes]]
method = "POST"
path = "/api/checkout.json"
[[routes.request.fields]]
select = "note"
category = "user.profile.note"
transform = "strip"
"""


def private_key(path: Path) -> Path:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(descriptor, pem)
    os.close(descriptor)
    return path


def production_env(tmp_path: Path, policy: Path) -> dict[str, str]:
    secret = "s" * 40
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_")},
        "PYTHONPATH": str(Path(privacy_middleware.__file__).parents[1]),
        "PRIVACY_ENV": "production",
        "PRIVACY_POLICY_FILE": str(policy),
        "PRIVACY_DATA_DIR": str(tmp_path),
        "PRIVACY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        "PRIVACY_PSEUDONYM_SECRET": secret,
        "PRIVACY_KEYS": "vault+https://vault.internal:8200/transit/shop",
        "PRIVACY_CONSENT__COOKIE_SECRET": secret,
        "PRIVACY_CONSENT__SIGNING_KEY_FILE": str(private_key(tmp_path / "consent.pem")),
        "PRIVACY_AUDIT__SIGNING_KEY_FILE": str(private_key(tmp_path / "audit.pem")),
        "PRIVACY_AUDIT__SIDE_RECORD_KEY": secret,
        "PRIVACY_AUDIT__LOGIN_GUARD_KEY": secret,
    }


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "privacy_middleware.cli", "serve", "--upstream", "http://127.0.0.1:9"]
    return subprocess.run([*command, "--port", "0"], env=env, capture_output=True, text=True, timeout=120)


def test_production_serve_refuses_to_start_with_an_uncovered_alias(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(SHADOWED)
    result = serve(production_env(tmp_path, policy))
    assert result.returncode != 0
    assert "Uvicorn running" not in result.stderr
    assert "planned routes reachable through spellings the plan does not cover" in result.stderr
    assert "POST /api/checkout: /api/checkout.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_serve_starts_when_every_alias_is_covered(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(SHADOWED.split('[[routes]]\nmethod = "POST"\npath = "/api/checkout.json"')[0])
    command = [sys.executable, "-m", "privacy_middleware.cli", "serve", "--upstream", "http://127.0.0.1:9"]
    lines: list[str] = []
    env = production_env(tmp_path, policy)
    with subprocess.Popen([*command, "--port", "0"], env=env, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            for line in process.stderr:  # ends when the process does
                lines.append(line)
                if "Application startup complete" in line:
                    break
        finally:
            process.terminate()
            process.wait(30)
    assert any("Application startup complete" in line for line in lines), "".join(lines)
    assert not any("does not cover" in line for line in lines)


def test_outside_production_an_uncovered_alias_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRIVACY_ENV", raising=False)
    policy = tmp_path / "policy.toml"
    policy.write_text(SHADOWED)
    with caplog.at_level(logging.WARNING, logger="privacy_middleware"):
        app = build_proxy_app("http://127.0.0.1:9", Settings(policy_file=policy, data_dir=tmp_path))
    assert app.identity.kind == "canonical"
    [warning] = [r.getMessage() for r in caplog.records if "does not cover" in r.getMessage()]
    assert "POST /api/checkout: /api/checkout.json" in warning


def test_in_production_the_middleware_is_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from privacy_middleware.errors import ConfigError
    from privacy_middleware.routing.coverage import check_at_start

    monkeypatch.setenv("PRIVACY_ENV", "production")
    with pytest.raises(ConfigError, match=r"POST /api/checkout: /api/checkout\.json"):
        check_at_start(shops.LenientShop(), validate_policy(__import__("tomllib").loads(SHADOWED)))


@pytest.mark.anyio
async def test_one_handler_on_two_routes_gets_its_plan_on_both(tmp_path: Path, asgi_lifespan: Any) -> None:
    """FastAPI: `/api/orders/{ref}` (planned) and a legacy `/api/v1/orders/{ref}` run one handler."""
    from fastapi import FastAPI

    shop = FastAPI()

    @shop.get("/api/v1/orders/{ref}")
    @shop.get("/api/orders/{ref}")
    async def order(ref: str) -> dict[str, Any]:
        return {**shops.ORDER, "ref": ref}

    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": shops.JWT_SECRET, "algorithms": ["HS256"]},
    )
    app = PrivacyMiddleware(shop, runtime=Runtime(settings, policy=shops.policy()))
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as client,
    ):
        for path in ("/api/orders/ord_1", "/api/v1/orders/ord_1"):
            response = await client.get(path, headers=shops.bearer(shops.CARRIER))
            assert response.status_code == 200, path
            assert orjson.loads(response.content) == {"street": shops.STREET}, path
