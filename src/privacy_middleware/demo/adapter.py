"""The demo shop's ShopAdapter: its SQLAlchemy tables read and changed directly.

A real platform adapter talks to the shop's admin API instead; the contract is the same. Orders are
classified by the policy's `order` shape, so anonymisation keeps exactly what a legal hold names
(and everything that is not personal, such as totals and items) and clears the rest, blind-index
and card companions included.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import ConfigError
from ..policy.schema import Policy
from ..policy.selectors import compile_selector
from ..rights.adapter import ErasureOutcome, RetentionItem, ShopAdapterError, ShopRecord
from .shop import addresses, customers, events, orders

ANONYMISED = "anonymised"
ORDER_SHAPE = "order"
RECTIFIABLE = {"name", "phone", "birth_date", "email"}
BROWSING = "user.behavior.browsing"
IP_ADDRESS = "user.device.ip_address"
_FIELD = re.compile(r"^[a-z_]{1,40}$")


def _covers(granted: str, category: str) -> bool:
    return category == granted or category.startswith(granted + ".")


def _held(category: str, holds: Iterable[str]) -> str | None:
    for hold in holds:
        if _covers(hold, category):
            return hold
    return None


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class DemoShopAdapter:
    name = "demo-shop"
    rectifiable = tuple(sorted(RECTIFIABLE))  # the privacy centre offers these fields for correction

    def __init__(self, engine: AsyncEngine, policy: Policy) -> None:
        self.engine = engine
        self.policy = policy
        shape = policy.shapes.get(ORDER_SHAPE)
        self._order_fields = [(compile_selector(f.select), f.category) for f in (shape.fields if shape else [])]
        self._order_objects = [compile_selector(s) for s in (shape.personal_objects if shape else [])]

    @asynccontextmanager
    async def _begin(self, operation: str) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                yield conn
        except OperationalError:
            raise ShopAdapterError(f"the shop database failed during {operation}", retryable=True) from None

    # -- reading ---------------------------------------------------------------------------------

    def order_categories(self, document: Any) -> set[str]:
        found = set()
        for selector, category in self._order_fields:
            if any(v is not None for v in selector.values(document)):
                found.add(category)
        return found

    async def records(self, subject: str) -> list[ShopRecord]:
        out: list[ShopRecord] = []
        async with self._begin("export") as conn:
            customer = (await conn.execute(sa.select(customers).where(customers.c.id == subject))).first()
            if customer is not None:
                out.append(
                    ShopRecord(
                        kind="customer",
                        id=customer.id,
                        data={"id": customer.id, "email": customer.email, **dict(customer.profile)},
                        created_at=_aware(customer.created_at),
                    )
                )
            for row in await conn.execute(sa.select(addresses).where(addresses.c.customer_id == subject)):
                out.append(ShopRecord(kind="address", id=row.id, data={"id": row.id, **dict(row.address)}))
            query = sa.select(orders).where(orders.c.customer_id == subject).order_by(orders.c.created_at)
            for row in await conn.execute(query):
                out.append(
                    ShopRecord(
                        kind="order",
                        id=row.id,
                        data=dict(row.document),
                        shape=ORDER_SHAPE,
                        created_at=_aware(row.created_at),
                    )
                )
        return out

    # -- erasure ---------------------------------------------------------------------------------

    def anonymise_order(self, document: dict[str, Any], holds: Iterable[str]) -> dict[str, Any]:
        """Keep what is held and what is not personal; clear every other classified field."""
        doc = copy.deepcopy(document)
        holds = list(holds)
        kept: set[tuple[int, Any]] = set()
        for selector, category in self._order_fields:
            for location in list(selector.locations(doc)):
                if _held(category, holds):
                    kept.add((id(location.parent), location.key))
        for selector, category in self._order_fields:
            if not _held(category, holds):
                for location in list(selector.locations(doc)):
                    location.delete()
        for selector in self._order_objects:
            for obj in list(selector.values(doc)):
                if isinstance(obj, dict):
                    for key in list(obj):
                        if (id(obj), key) not in kept and not isinstance(obj[key], dict):
                            del obj[key]
        doc["customer_id"] = ANONYMISED
        doc["anonymised"] = True
        return doc

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> ErasureOutcome:
        deleted: list[str] = []
        anonymised: list[str] = []
        kept: list[tuple[str, str]] = []
        async with self._begin("erasure") as conn:
            rows = (await conn.execute(sa.select(orders).where(orders.c.customer_id == subject))).all()
            for row in rows:
                held = sorted(
                    {h for c in self.order_categories(row.document) if (h := _held(c, keep_for_legal_hold)) is not None}
                )
                if held:
                    document = self.anonymise_order(dict(row.document), held)
                    await conn.execute(
                        orders.update().where(orders.c.id == row.id).values(document=document, customer_id=ANONYMISED)
                    )
                    anonymised.append(f"order:{row.id}")
                    kept.extend((f"order:{row.id}", keep_for_legal_hold[h]) for h in held)
                else:
                    await conn.execute(orders.delete().where(orders.c.id == row.id))
                    deleted.append(f"order:{row.id}")
            address_ids = (
                (await conn.execute(sa.select(addresses.c.id).where(addresses.c.customer_id == subject)))
                .scalars()
                .all()
            )
            await conn.execute(addresses.delete().where(addresses.c.customer_id == subject))
            deleted.extend(f"address:{a}" for a in address_ids)
            gone = await conn.execute(customers.delete().where(customers.c.id == subject))
            if gone.rowcount:
                deleted.append(f"customer:{subject}")
        return ErasureOutcome(deleted=deleted, anonymised=anonymised, kept=kept)

    # -- rectification ---------------------------------------------------------------------------

    async def rectify(self, subject: str, changes: dict[str, Any]) -> list[str]:
        for key, value in changes.items():
            if key not in RECTIFIABLE:
                name = key if isinstance(key, str) and _FIELD.match(key) else "given"
                raise ShopAdapterError(f"the {name} field cannot be corrected here")
            if not isinstance(value, str) or not value.strip() or len(value) > 320:
                raise ShopAdapterError(f"the corrected {key} must be a non-empty text")
        try:
            async with self._begin("rectification") as conn:
                row = (await conn.execute(sa.select(customers).where(customers.c.id == subject))).first()
                if row is None:
                    raise ShopAdapterError("the shop has no account for this subject")
                profile = dict(row.profile)
                profile.update({k: v for k, v in changes.items() if k != "email"})
                values: dict[str, Any] = {"profile": profile}
                if "email" in changes:
                    values["email"] = changes["email"]
                await conn.execute(customers.update().where(customers.c.id == subject).values(**values))
        except IntegrityError:
            raise ShopAdapterError("the corrected e-mail is already used by another account") from None
        return sorted(changes)

    # -- retention -------------------------------------------------------------------------------

    async def expired(self, category: str, cutoff: dt.datetime) -> list[RetentionItem]:
        before = _naive_utc(cutoff)
        items: list[RetentionItem] = []
        async with self._begin("retention") as conn:
            if category in (BROWSING, IP_ADDRESS):
                rows = await conn.execute(
                    sa.select(events.c.id, events.c.document, events.c.received_at)
                    .where(events.c.received_at < before)
                    .order_by(events.c.id)
                )
                for row in rows:
                    if category == IP_ADDRESS and "ip" not in (row.document or {}):
                        continue
                    created = _aware(row.received_at)
                    assert created is not None
                    items.append(RetentionItem("tracking_event", str(row.id), category, created))
                return items
            rows = await conn.execute(
                sa.select(orders.c.id, orders.c.customer_id, orders.c.document, orders.c.created_at)
                .where(orders.c.created_at < before)
                .order_by(orders.c.created_at)
            )
            for row in rows:
                if any(_covers(category, c) for c in self.order_categories(row.document)):
                    created = _aware(row.created_at)
                    assert created is not None
                    subject = row.customer_id if row.customer_id != ANONYMISED else None
                    items.append(RetentionItem("order", row.id, category, created, subject))
        return items

    async def apply_retention(self, items: list[RetentionItem], action: Literal["delete", "anonymise"]) -> int:
        changed = 0
        async with self._begin("retention") as conn:
            for item in items:
                if item.kind == "tracking_event":
                    event_id = int(item.id)
                    if item.category == BROWSING:
                        result = await conn.execute(events.delete().where(events.c.id == event_id))
                        changed += result.rowcount or 0
                        continue
                    document = await conn.scalar(sa.select(events.c.document).where(events.c.id == event_id))
                    if isinstance(document, dict) and "ip" in document:
                        rest = {k: v for k, v in document.items() if k != "ip"}
                        await conn.execute(events.update().where(events.c.id == event_id).values(document=rest))
                        changed += 1
                elif item.kind == "order":
                    document = await conn.scalar(sa.select(orders.c.document).where(orders.c.id == item.id))
                    if not isinstance(document, dict):
                        continue
                    # Both actions remove the category's fields: the rest of the order is still needed.
                    doc = copy.deepcopy(document)
                    for selector, category in self._order_fields:
                        if _covers(item.category, category):
                            for location in list(selector.locations(doc)):
                                location.delete()
                    await conn.execute(orders.update().where(orders.c.id == item.id).values(document=doc))
                    changed += 1
        return changed


def from_runtime(runtime: Any) -> DemoShopAdapter:
    """The `demo` entry of the shop-adapter table: the demo shop's database under PRIVACY_DATA_DIR."""
    from sqlalchemy.ext.asyncio import create_async_engine

    shop_db = Path(runtime.settings.data_dir).resolve() / "shop.db"
    if not shop_db.exists():
        raise ConfigError(f"no demo shop database at {shop_db}; set PRIVACY_DATA_DIR")
    engine = create_async_engine(f"sqlite+aiosqlite:///{shop_db}", hide_parameters=True)
    runtime.on_stop(engine.dispose)
    return DemoShopAdapter(engine, runtime.policy)
