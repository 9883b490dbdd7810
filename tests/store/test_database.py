import pytest
import sqlalchemy as sa

from privacy_middleware.errors import ConfigError
from privacy_middleware.store import Database, redact_url
from privacy_middleware.store.migrations import available, current_version
from privacy_middleware.store.tables import schema_version

pytestmark = pytest.mark.anyio


async def test_upgrade_applies_every_migration_once(database: Database) -> None:
    latest = max(m.VERSION for m in available())
    assert await current_version(database) == latest
    assert await database.upgrade() == []
    async with database.connect() as conn:
        rows = (await conn.execute(sa.select(schema_version.c.version))).scalars().all()
    assert sorted(rows) == [m.VERSION for m in available()]


async def test_unreachable_database_names_url_without_password() -> None:
    db = Database("postgresql://shop:s3cret-pw@127.0.0.1:1/shop")
    with pytest.raises(ConfigError) as info:
        await db.check()
    await db.dispose()
    assert "s3cret-pw" not in str(info.value)
    assert "127.0.0.1:1/shop" in str(info.value)


def test_redact_url_hides_password() -> None:
    assert "pw" not in redact_url("postgresql+asyncpg://u:pw@h/db")


def test_unsupported_database_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Database("mysql://root@localhost/shop")
