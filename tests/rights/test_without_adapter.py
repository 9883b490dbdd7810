"""Subject rights with no shop adapter: export and erasure of what the middleware itself holds."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from privacy_middleware.cli import main as cli
from privacy_middleware.keyfiles import load_or_create_signing_key
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.rights.receipts import verify_erasure_receipt
from privacy_middleware.rights.service import receipt_key_path
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from privacy_middleware.store.consent import ConsentRepository
from privacy_middleware.store.consent_records import ConsentRecord, Holder

pytestmark = pytest.mark.anyio

SECRET = "rights-without-adapter-secret-0123456789"
POLICY_TOML = """
[policy]
name = "t"
version = "1"
effective_date = "2026-01-01"
controller = "Shop Ltd"

[categories."user.contact.address.delivery"]
[categories."user.contact.phone"]

[purposes.order_fulfilment]
legal_basis = "contract"
[purposes.analytics]
legal_basis = "consent"

[audit]
admin_scope = "privacy:admin"

[[routes]]
method = "POST"
path = "/addresses"
purpose = "order_fulfilment"
[routes.request]
fields = [
  { select = "street", category = "user.contact.address.delivery", transform = "encrypt" },
  { select = "phone", category = "user.contact.phone", transform = "tokenise" },
]
"""
POLICY: dict[str, Any] = tomllib.loads(POLICY_TOML)


def token(sub: str, **extra: Any) -> dict[str, str]:
    now = int(time.time())
    encoded = jwt.encode({"sub": sub, "iat": now, "exp": now + 300, **extra}, SECRET, algorithm="HS256")
    return {"authorization": f"Bearer {encoded}"}


def shop_app() -> tuple[Starlette, list[dict[str, Any]]]:
    stored: list[dict[str, Any]] = []

    async def add(request: Request) -> JSONResponse:
        stored.append(await request.json())
        return JSONResponse({"id": len(stored)}, status_code=201)

    return Starlette(routes=[Route("/addresses", add, methods=["POST"])]), stored


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}",
        data_dir=tmp_path,
        jwt={"secret": SECRET, "algorithms": ["HS256"]},
        audit={"retention_interval_seconds": 0},
    )


@pytest.fixture
async def shop(settings: Settings, asgi_lifespan: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime, list[Any]]]:
    app, stored = shop_app()
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    middleware = PrivacyMiddleware(app, runtime=runtime)
    async with (
        asgi_lifespan(middleware),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url="http://shop") as client,
    ):
        yield client, runtime, stored


async def consent(runtime: Runtime, subject: str) -> None:
    await ConsentRepository(runtime.database).append(
        ConsentRecord(
            id=ConsentRecord.new_id(),
            holder=Holder.subject(subject),
            purposes={"analytics": True},
            policy_version="1",
            method="banner",
            recorded_at=dt.datetime.now(dt.UTC),
            ip_prefix="198.51.100.0/24",
            receipt="receipt-jws",
        )
    )


async def test_export_without_adapter_returns_what_the_middleware_holds(shop: Any) -> None:
    client, runtime, stored = shop
    created = await client.post(
        "/addresses", json={"street": "1 Main St", "phone": "+441234567890"}, headers=token("c1")
    )
    assert created.status_code == 201
    assert stored[0]["street"].startswith("pe1.") and stored[0]["phone"].startswith("tok_")
    await consent(runtime, "c1")

    response = await client.get("/privacy/me/export", headers=token("c1"))
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["shop"] == {"source": "none", "reached": False, "records": []}
    assert document["coverage"]["not_covered"][0]["what"] == "shop"
    assert document["middleware"]["subject_key"]["created_at"]
    assert [t["category"] for t in document["middleware"]["tokens"]] == ["user.contact.phone"]
    assert document["consent"]["current"]["analytics"]["granted"] is True
    assert document["consent"]["history"][0]["receipt"] == "receipt-jws"
    assert "+441234567890" not in response.text


async def test_erasure_without_adapter_shreds_the_key_and_says_what_it_did_not_cover(
    shop: Any, settings: Settings
) -> None:
    client, runtime, stored = shop
    await client.post("/addresses", json={"street": "1 Main St", "phone": "+441234567890"}, headers=token("c2"))
    await consent(runtime, "c2")

    response = await client.post("/privacy/me/erasure", json={}, headers=token("c2"))
    assert response.status_code == 200, response.text
    key = load_or_create_signing_key(receipt_key_path(settings.data_dir))
    claims = verify_erasure_receipt(response.json()["receipt"], key.public_key())
    assert claims["sub"] == "c2"
    assert claims["shop"]["source"] == "none" and claims["shop"]["reached"] is False
    assert claims["crypto_shredding"] == {"keys_destroyed": 1, "tokens_destroyed": 1}
    assert claims["consent"]["records"] == 1
    assert claims["not_covered"][0].startswith("shop: no shop adapter is configured")
    assert any(c.startswith("subject_key: destroyed") for c in claims["covered"])

    service = await runtime.keys.get()
    with pytest.raises(Exception):  # noqa: B017 - any failure: the ciphertext the shop keeps is dead
        await service.decrypt(stored[0]["street"], category="user.contact.address.delivery", subject="c2")
    again = await client.post("/privacy/me/erasure", json={}, headers=token("c2"))
    assert again.json()["receipt"] == response.json()["receipt"]


async def test_rectification_without_adapter_is_refused_clearly(shop: Any) -> None:
    client, runtime, _ = shop
    await consent(runtime, "c3")
    response = await client.post("/privacy/me/rectification", json={"changes": {"name": "Ada"}}, headers=token("c3"))
    assert response.status_code == 422
    assert response.json()["code"] == "rectification_rejected"


@pytest.mark.parametrize("path", ["/privacy/me/export", "/privacy/me/erasure"])
async def test_an_unknown_subject_is_404_never_a_receipt(shop: Any, path: str) -> None:
    client, runtime, _ = shop
    admin = token("dpo", scope="privacy:admin")
    if path.endswith("export"):
        response = await client.get(path, params={"subject": "c-typo", "reason": "ticket 7"}, headers=admin)
    else:
        response = await client.post(path, json={"subject": "c-typo", "reason": "ticket 7"}, headers=admin)
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_subject"
    assert await runtime.rights.requests_of("c-typo") == []  # type: ignore[union-attr]


async def test_dsar_of_an_unknown_subject_exits_1(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(POLICY_TOML)
    monkeypatch.setenv("PRIVACY_POLICY_FILE", str(policy_file))
    monkeypatch.setenv("PRIVACY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PRIVACY_KEYS", settings.keys_url)
    monkeypatch.setenv("PRIVACY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PRIVACY_SHOP_ADAPTER", raising=False)
    assert await asyncio.to_thread(cli, ["dsar", "erase", "c-typo"]) == 1
    assert await asyncio.to_thread(cli, ["dsar", "export", "c-typo", "--out", str(tmp_path / "x.json")]) == 1
    printed = capsys.readouterr().out
    assert "Nothing is held about this subject" in printed and "receipt" not in printed
    assert not (tmp_path / "x.json").exists()
