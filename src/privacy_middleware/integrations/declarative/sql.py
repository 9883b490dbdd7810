"""The SQL adapter: SQLAlchemy Core on the shop's own database, tables named in the policy.

`[[adapter.tables]]` entries name a table, the column holding the subject id, and what erasure
does to each field (erase: emptied, anonymise: replaced, keep: kept under a legal hold). A row
whose table keeps a field, or holds a category on legal hold, is anonymised and kept; other rows
are deleted. Tables are reflected from the database at first use, so the policy names only what
matters. Database errors are retryable ShopAdapterErrors naming the table, never a value.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ...errors import ConfigError
from ...policy.schema import Policy, SqlTable
from ...rights.adapter import ErasureOutcome, RetentionItem, ShopAdapterError, ShopRecord
from ...store.database import normalise_url
from .common import ANONYMISED, ANONYMISED_ROOM, fate, item, jsonable


def _empty(column: sa.Column[Any]) -> Any:
    if column.nullable:
        return None
    return "" if isinstance(column.type, sa.String) else None


def _anonymised(column: sa.Column[Any], key: sa.Column[Any]) -> Any:
    if isinstance(column.type, sa.String):
        length = column.type.length
        if length is None or length >= ANONYMISED_ROOM:
            return sa.literal(ANONYMISED) + sa.cast(key, sa.String)
        return ""
    return _empty(column)


class SqlAdapter:
    name = "sql"

    def __init__(self, engine: AsyncEngine, policy: Policy) -> None:
        self.engine = engine
        self.policy = policy
        self.declared = list(policy.adapter.tables)
        self._tables: dict[str, sa.Table] = {}

    @classmethod
    def from_url(cls, url: str, policy: Policy) -> SqlAdapter:
        return cls(create_async_engine(normalise_url(url), hide_parameters=True), policy)

    async def _table(self, conn: AsyncConnection, declared: SqlTable) -> sa.Table:
        table = self._tables.get(declared.table)
        if table is None:
            metadata = sa.MetaData()
            table = await conn.run_sync(lambda sync: sa.Table(declared.table, metadata, autoload_with=sync))
            missing = [c for c in [declared.subject, declared.key, *declared.fields] if c not in table.c]
            if missing:
                raise ShopAdapterError(f"table {declared.table} has no column(s) {', '.join(missing)}")
            self._tables[declared.table] = table
        return table

    @staticmethod
    def _of(table: sa.Table, declared: SqlTable, subject: str) -> sa.ColumnElement[bool]:
        return sa.cast(table.c[declared.subject], sa.String) == subject

    async def records(self, subject: str) -> list[ShopRecord]:
        found: list[ShopRecord] = []
        try:
            async with self.engine.connect() as conn:
                for declared in self.declared:
                    table = await self._table(conn, declared)
                    for row in await conn.execute(sa.select(table).where(self._of(table, declared, subject))):
                        data = {str(k): jsonable(v) for k, v in row._asdict().items()}
                        created = row._mapping.get(declared.created) if declared.created else None
                        found.append(
                            ShopRecord(
                                kind=declared.kind or declared.table,
                                id=str(data[declared.key]),
                                data=data,
                                shape=declared.shape,
                                created_at=created if isinstance(created, dt.datetime) else None,
                            )
                        )
        except SQLAlchemyError as exc:
            raise ShopAdapterError(f"reading the shop's tables failed ({type(exc).__name__})", retryable=True) from None
        return found

    def _changes(self, table: sa.Table, declared: SqlTable) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name, action in declared.fields.items():
            if action == "erase":
                changes[name] = _empty(table.c[name])
            elif action == "anonymise":
                changes[name] = _anonymised(table.c[name], table.c[declared.key])
        return changes

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> ErasureOutcome:
        outcome = ErasureOutcome()
        try:
            async with self.engine.begin() as conn:
                for declared in self.declared:
                    table = await self._table(conn, declared)
                    where = self._of(table, declared, subject)
                    keys = [
                        str(k) for k in (await conn.execute(sa.select(table.c[declared.key]).where(where))).scalars()
                    ]
                    if not keys:
                        continue
                    kind = declared.kind or declared.table
                    decided = fate(declared, keep_for_legal_hold)
                    if decided.delete:
                        await conn.execute(table.delete().where(where))
                        outcome.deleted.extend(item(kind, k) for k in keys)
                        continue
                    changes = self._changes(table, declared)
                    if changes:
                        await conn.execute(table.update().where(where).values(**changes))
                    outcome.anonymised.extend(item(kind, k) for k in keys)
                    outcome.kept.extend((item(kind, k), decided.reason) for k in keys)
        except SQLAlchemyError as exc:
            raise ShopAdapterError(
                f"erasing in the shop's tables failed ({type(exc).__name__})", retryable=True
            ) from None
        return outcome

    async def rectify(self, subject: str, changes: dict[str, Any]) -> list[str]:
        raise ShopAdapterError("the SQL adapter does not apply corrections; make them in the shop")

    async def expired(self, category: str, cutoff: dt.datetime) -> list[RetentionItem]:
        items: list[RetentionItem] = []
        try:
            async with self.engine.connect() as conn:
                for declared in self.declared:
                    if category not in declared.categories or not declared.created:
                        continue
                    table = await self._table(conn, declared)
                    query = sa.select(table.c[declared.key], table.c[declared.created], table.c[declared.subject])
                    for key, created, subject in await conn.execute(query.where(table.c[declared.created] < cutoff)):
                        items.append(
                            RetentionItem(
                                kind=declared.kind or declared.table,
                                id=str(key),
                                category=category,
                                created_at=created,
                                subject=None if subject is None else str(subject),
                            )
                        )
        except SQLAlchemyError as exc:
            raise ShopAdapterError(f"reading the shop's tables failed ({type(exc).__name__})", retryable=True) from None
        return items

    async def apply_retention(self, items: list[RetentionItem], action: Literal["delete", "anonymise"]) -> int:
        changed = 0
        by_kind = {declared.kind or declared.table: declared for declared in self.declared}
        try:
            async with self.engine.begin() as conn:
                for kind, declared in by_kind.items():
                    keys = [i.id for i in items if i.kind == kind]
                    if not keys:
                        continue
                    table = await self._table(conn, declared)
                    where = sa.cast(table.c[declared.key], sa.String).in_(keys)
                    changes = self._changes(table, declared)
                    if action == "delete":
                        result = await conn.execute(table.delete().where(where))
                    elif changes:
                        result = await conn.execute(table.update().where(where).values(**changes))
                    else:
                        continue
                    changed += int(result.rowcount or 0)
        except SQLAlchemyError as exc:
            raise ShopAdapterError(
                f"retention in the shop's tables failed ({type(exc).__name__})", retryable=True
            ) from None
        return changed

    async def close(self) -> None:
        await self.engine.dispose()


def from_runtime(runtime: Any) -> SqlAdapter:
    """PRIVACY_SHOP_ADAPTER=sql: the tables of `[[adapter.tables]]` on PRIVACY_SHOP_DATABASE_URL."""
    url = runtime.settings.shop_database_url
    if url is None or not runtime.policy.adapter.tables:
        raise ConfigError("the sql shop adapter needs PRIVACY_SHOP_DATABASE_URL and [[adapter.tables]] in the policy")
    adapter = SqlAdapter.from_url(url.get_secret_value(), runtime.policy)
    runtime.on_stop(adapter.close)
    return adapter
