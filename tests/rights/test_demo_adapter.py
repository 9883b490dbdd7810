"""The demo shop adapter against the demo shop's real SQLite database."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy_middleware.demo.adapter import DemoShopAdapter
from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.demo.shop import DemoShop, addresses, customers, events, orders
from privacy_middleware.policy.load import load_policy
from privacy_middleware.rights.adapter import RetentionItem, ShopAdapter, ShopAdapterError

pytestmark = pytest.mark.anyio
POLICY = load_policy(demo_policy_path())
HOLD = {"user.financial.card.last4": "Invoices are kept 10 years for tax law"}
NOW = dt.datetime.now(dt.UTC)


def order_document(order_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "id": order_id,
        "customer_id": customer_id,
        "status": "paid",
        "items": [{"sku": "TEA-001", "qty": 2}],
        "total": 17.0,
        "currency": "EUR",
        "customer": {"email": "ada@example.com", "name": "Ada Lovelace", "loyalty_tier": "gold"},
        "shipping_address": {
            "name": "pe1.k.name",
            "street": "pe1.k.street",
            "city": "London",
            "postal_code": "NW1 5LR",
            "country": "GB",
            "phone": "pe1.k.phone",
            "street_index": "bi_abc",
        },
        "billing_address": {"name": "pe1.k.b", "street": "pe1.k.bs", "city": "London", "country": "GB"},
        "payment": {
            "card": {
                "number": "pe1.k.pan",
                "number_last4": "4242",
                "number_brand": "visa",
                "exp_month": 12,
                "exp_year": 2030,
                "holder": "pe1.k.holder",
            }
        },
        "note": "Please ring twice.",
        "created_at": NOW.isoformat(),
    }


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[DemoShop]:
    shop = DemoShop(tmp_path)
    await shop.ensure_schema()
    async with shop.engine.begin() as conn:
        for customer_id, email in (("cus_ada", "ada@example.com"), ("cus_bob", "bob@example.com")):
            await conn.execute(
                customers.insert().values(
                    id=customer_id,
                    email=email,
                    password_hash="x",
                    created_at=NOW,
                    profile={"name": "Ada Lovelace" if customer_id == "cus_ada" else "Bob", "phone": "+44 1"},
                )
            )
            await conn.execute(
                addresses.insert().values(
                    id=f"adr_{customer_id}", customer_id=customer_id, address={"street": "1 Tea Lane"}
                )
            )
            await conn.execute(
                orders.insert().values(
                    id=f"ord_{customer_id}",
                    customer_id=customer_id,
                    document=order_document(f"ord_{customer_id}", customer_id),
                    created_at=NOW - dt.timedelta(days=400),
                )
            )
        await conn.execute(
            events.insert().values(
                document={"event": "view", "ip": "198.51.100.0"}, received_at=NOW - dt.timedelta(days=500)
            )
        )
        await conn.execute(
            events.insert().values(
                document={"event": "view", "ip": "198.51.100.0"}, received_at=NOW - dt.timedelta(days=40)
            )
        )
        await conn.execute(
            events.insert().values(
                document={"event": "view", "ip": "198.51.100.0"}, received_at=NOW - dt.timedelta(days=1)
            )
        )
    yield shop
    await shop.engine.dispose()


@pytest.fixture
def adapter(shop: DemoShop) -> DemoShopAdapter:
    return DemoShopAdapter(shop.engine, POLICY)


async def test_it_is_a_shop_adapter_and_finds_only_the_subjects_records(adapter: DemoShopAdapter) -> None:
    assert isinstance(adapter, ShopAdapter)
    records = await adapter.records("cus_ada")
    assert [(r.kind, r.id, r.shape) for r in records] == [
        ("customer", "cus_ada", ""),
        ("address", "adr_cus_ada", ""),
        ("order", "ord_cus_ada", "order"),
    ]
    assert "password_hash" not in records[0].data and records[0].data["email"] == "ada@example.com"
    assert records[2].created_at is not None and records[2].created_at.tzinfo is not None
    assert await adapter.records("cus_nobody") == []


async def test_erasure_anonymises_held_orders_and_deletes_the_rest(adapter: DemoShopAdapter, shop: DemoShop) -> None:
    outcome = await adapter.erase("cus_ada", keep_for_legal_hold=HOLD)
    assert outcome.deleted == ["address:adr_cus_ada", "customer:cus_ada"]
    assert outcome.anonymised == ["order:ord_cus_ada"]
    assert outcome.kept == [("order:ord_cus_ada", HOLD["user.financial.card.last4"])]
    async with shop.engine.connect() as conn:
        row = (await conn.execute(sa.select(orders).where(orders.c.id == "ord_cus_ada"))).one()
        remaining = (await conn.execute(sa.select(sa.func.count()).select_from(customers))).scalar()
    doc = row.document
    assert row.customer_id == "anonymised" and doc["customer_id"] == "anonymised"
    assert doc["total"] == 17.0 and doc["items"] == [{"sku": "TEA-001", "qty": 2}] and doc["status"] == "paid"
    assert doc["payment"] == {"card": {"number_last4": "4242"}}
    assert doc["shipping_address"] == {} and doc["billing_address"] == {} and doc["customer"] == {}
    assert "note" not in doc
    assert remaining == 1  # Bob is untouched
    assert len(await adapter.records("cus_bob")) == 3
    again = await adapter.erase("cus_ada", keep_for_legal_hold=HOLD)
    assert again.deleted == [] and again.anonymised == [] and again.kept == []


async def test_without_a_legal_hold_orders_are_deleted(adapter: DemoShopAdapter) -> None:
    outcome = await adapter.erase("cus_bob", keep_for_legal_hold={})
    assert outcome.deleted == ["order:ord_cus_bob", "address:adr_cus_bob", "customer:cus_bob"]
    assert outcome.anonymised == [] and await adapter.records("cus_bob") == []


# Marked so a value can never be mistaken for a key or a non-personal value of the order.
personal_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=20).map(
    lambda text: "pii_" + text
)


def leaves(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in leaves(value)]
    return [str(node)]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(personal_text, min_size=8, max_size=8, unique=True),
    extra_key=st.sampled_from(["street_index", "number_hash", "nickname"]),
)
def test_anonymised_orders_keep_no_personal_value_except_the_held_ones(values: list[str], extra_key: str) -> None:
    adapter = DemoShopAdapter(None, POLICY)  # type: ignore[arg-type]  # no database for a pure transform
    doc = order_document("ord_1", "cus_1")
    doc["customer"] = {"email": values[0], "name": values[1], extra_key: values[2]}
    doc["shipping_address"] = {"street": values[3], "phone": values[4], extra_key: values[5]}
    doc["payment"]["card"] = {"number": values[6], "number_last4": values[7][-4:], extra_key: values[2]}
    doc["note"] = values[0] + " " + values[3]
    out = adapter.anonymise_order(doc, HOLD)
    kept = leaves(out)
    for value in values[:7]:
        assert not any(value in leaf for leaf in kept)
    assert out["payment"]["card"] == {"number_last4": values[7][-4:]}
    assert out["total"] == 17.0 and out["currency"] == "EUR"


async def test_rectification_changes_allowed_fields_only(adapter: DemoShopAdapter) -> None:
    assert await adapter.rectify("cus_ada", {"phone": "+44 2", "email": "ada@new.example"}) == [
        "email",
        "phone",
    ]
    [customer, *_] = await adapter.records("cus_ada")
    assert customer.data["email"] == "ada@new.example" and customer.data["phone"] == "+44 2"
    for changes in ({"password_hash": "x"}, {"name": ""}, {"name": 5}, {"id": "cus_bob"}):
        with pytest.raises(ShopAdapterError) as refused:
            await adapter.rectify("cus_ada", changes)
        assert not refused.value.retryable
    with pytest.raises(ShopAdapterError, match="already used"):
        await adapter.rectify("cus_ada", {"email": "bob@example.com"})
    with pytest.raises(ShopAdapterError, match="no account"):
        await adapter.rectify("cus_nobody", {"name": "X"})


async def test_retention_finds_and_removes_data_past_its_period(adapter: DemoShopAdapter, shop: DemoShop) -> None:
    browsing = await adapter.expired("user.behavior.browsing", NOW - dt.timedelta(days=396))
    assert [(i.kind, i.category) for i in browsing] == [("tracking_event", "user.behavior.browsing")]
    ips = await adapter.expired("user.device.ip_address", NOW - dt.timedelta(days=30))
    assert len(ips) == 2
    assert await adapter.apply_retention(browsing, "delete") == 1
    assert (
        await adapter.apply_retention(
            await adapter.expired("user.device.ip_address", NOW - dt.timedelta(days=30)), "delete"
        )
        == 1
    )
    async with shop.engine.connect() as conn:
        left = [r.document for r in await conn.execute(sa.select(events.c.document).order_by(events.c.id))]
    assert left == [{"event": "view"}, {"event": "view", "ip": "198.51.100.0"}]
    notes = await adapter.expired("user.content.order_note", NOW - dt.timedelta(days=365))
    assert {(i.id, i.subject) for i in notes} == {("ord_cus_ada", "cus_ada"), ("ord_cus_bob", "cus_bob")}
    assert await adapter.apply_retention(notes, "anonymise") == 2
    [order, *_] = [r for r in await adapter.records("cus_ada") if r.kind == "order"]
    assert "note" not in order.data and order.data["total"] == 17.0
    assert await adapter.expired("user.content.order_note", NOW - dt.timedelta(days=365)) == []
    assert (
        await adapter.apply_retention([RetentionItem("order", "ord_missing", "user.content.order_note", NOW)], "delete")
        == 0
    )
