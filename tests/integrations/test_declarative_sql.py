"""The declarative SQL adapter on a shop's own SQLite database: export and erasure with no code."""

from __future__ import annotations

import datetime as dt
import time
import tomllib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from conftest import fresh_postgres_database
from privacy_middleware.keyfiles import load_or_create_signing_key
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.rights.receipts import verify_erasure_receipt
from privacy_middleware.rights.service import receipt_key_path
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio

SECRET = "declarative-sql-adapter-secret-0123456789"
POLICY_TOML = """
[policy]
name = "t"
version = "1"
effective_date = "2026-01-01"

[categories."user.contact.email"]
[categories."user.name"]
[categories."user.contact.address.delivery"]
[categories."user.financial.invoice"]

[purposes.order_fulfilment]
legal_basis = "contract"
[purposes.accounting]
legal_basis = "legal_obligation"

[rights]
legal_holds = [{ category = "user.financial.invoice", purpose = "accounting", days = 3650, \
  reason = "Invoices are kept 10 years for tax law" }]

[shapes.order]
subject = "customer_id"
fields = [{ select = "street", category = "user.contact.address.delivery" }]

[[adapter.tables]]
table = "customers"
subject = "id"
kind = "customer"
fields = { email = "erase", name = "erase" }

[[adapter.tables]]
table = "orders"
subject = "customer_id"
kind = "order"
shape = "order"
categories = ["user.financial.invoice"]
created = "created_at"
fields = { street = "erase", buyer = "anonymise", total = "keep" }
"""


def token(sub: str, **extra: Any) -> dict[str, str]:
    now = int(time.time())
    encoded = jwt.encode({"sub": sub, "iat": now, "exp": now + 300, **extra}, SECRET, algorithm="HS256")
    return {"authorization": f"Bearer {encoded}"}


class ShopDatabase:
    """The shop's own database, on real SQLite or real PostgreSQL, as the shop would create it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_async_engine(url)
        self.postgres = url.startswith("postgresql")

    async def create(self) -> None:
        timestamp = "TIMESTAMP WITH TIME ZONE" if self.postgres else "TIMESTAMP"
        async with self.engine.begin() as conn:
            await conn.exec_driver_sql(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(254) NOT NULL, name VARCHAR(100))"
            )
            await conn.exec_driver_sql(
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, street TEXT, buyer VARCHAR(100),"
                f" total NUMERIC NOT NULL, created_at {timestamp} NOT NULL)"
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO customers VALUES (7, 'ada@example.com', 'Ada Lovelace'), (9, 'bo@example.com', 'Bo')"
                )
            )

    async def add_order(self, street: str) -> None:
        created: Any = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO orders VALUES (1, 7, :street, 'Ada Lovelace', 17.50, :created)"),
                {"street": street, "created": created if self.postgres else created.isoformat()},
            )

    async def rows(self, query: str) -> list[tuple[Any, ...]]:
        async with self.engine.begin() as conn:
            return [tuple(row) for row in await conn.execute(sa.text(query))]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def shop(
    request: pytest.FixtureRequest, tmp_path: Path, asgi_lifespan: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime, ShopDatabase]]:
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'shop.sqlite3'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_database())
        shop_db = ShopDatabase(url)
        stack.push_async_callback(shop_db.engine.dispose)
        await shop_db.create()
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'privacy.db'}",
            data_dir=tmp_path,
            jwt={"secret": SECRET, "algorithms": ["HS256"]},
            shop_adapter="sql",
            shop_database_url=url,
            audit={"retention_interval_seconds": 0},
        )
        runtime = Runtime(settings, policy=validate_policy(tomllib.loads(POLICY_TOML)))
        app = PrivacyMiddleware(Starlette(), runtime=runtime)
        async with (
            asgi_lifespan(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
        ):
            sealed = await runtime.fields.cipher.encrypt(  # type: ignore[union-attr]
                "1 Main St", category="user.contact.address.delivery", subject="7"
            )
            await shop_db.add_order(sealed)
            yield client, runtime, shop_db


async def test_export_reads_the_declared_tables_and_reveals_protected_columns(shop: Any) -> None:
    client, _, _ = shop
    response = await client.get("/privacy/me/export", headers=token("7"))
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["shop"]["source"] == "sql" and document["shop"]["reached"] is True
    records = {(r["kind"], r["id"]): r for r in document["shop"]["records"]}
    assert records[("customer", "7")]["data"]["email"] == "ada@example.com"
    order = records[("order", "1")]
    assert order["data"]["street"] == "1 Main St"
    assert order["categories"] == ["user.contact.address.delivery"]
    assert ("customer", "9") not in records


async def test_erasure_deletes_anonymises_under_legal_hold_and_signs_what_it_did(shop: Any, tmp_path: Path) -> None:
    client, _, shop_db = shop
    response = await client.post("/privacy/me/erasure", json={}, headers=token("7"))
    assert response.status_code == 200, response.text
    claims = verify_erasure_receipt(
        response.json()["receipt"], load_or_create_signing_key(receipt_key_path(tmp_path)).public_key()
    )
    assert claims["shop"]["deleted"] == ["customer:7"]
    assert claims["shop"]["anonymised"] == ["order:1"]
    assert claims["shop"]["kept"] == [{"item": "order:1", "reason": "Invoices are kept 10 years for tax law"}]
    assert await shop_db.rows("SELECT id FROM customers") == [(9,)]
    assert await shop_db.rows("SELECT street, buyer, total FROM orders") == [(None, "anonymised-1", 17.5)]


async def test_a_subject_the_shop_does_not_know_is_404(shop: Any) -> None:
    client, _, _ = shop
    admin = token("dpo", scope="privacy:admin")
    response = await client.post("/privacy/me/erasure", json={"subject": "70", "reason": "ticket"}, headers=admin)
    assert response.status_code == 404 and response.json()["code"] == "unknown_subject"
    known = await client.get("/privacy/me/export", params={"subject": "9", "reason": "ticket"}, headers=admin)
    assert known.status_code == 200  # the middleware holds nothing about 9, the shop does


async def test_retention_finds_and_anonymises_old_rows(shop: Any) -> None:
    _, runtime, shop_db = shop
    adapter = runtime.adapter
    old = await adapter.expired("user.financial.invoice", dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    assert [(i.kind, i.id, i.subject) for i in old] == [("order", "1", "7")]
    assert await adapter.apply_retention(old, "anonymise") == 1
    assert await shop_db.rows("SELECT street, buyer FROM orders") == [(None, "anonymised-1")]


async def test_a_table_without_the_declared_column_is_a_clear_error(shop: Any) -> None:
    _, runtime, shop_db = shop
    async with shop_db.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE orders RENAME COLUMN buyer TO purchaser")
    from privacy_middleware.rights.adapter import ShopAdapterError

    runtime.adapter._tables.clear()
    with pytest.raises(ShopAdapterError, match="orders has no column"):
        await runtime.adapter.records("7")
