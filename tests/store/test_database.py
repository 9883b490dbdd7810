from pathlib import Path

import pytest
import sqlalchemy as sa

from privacy_middleware.errors import ConfigError
from privacy_middleware.settings import Settings
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


@pytest.mark.parametrize(("configured", "level"), [(None, 2), ("normal", 1), ("full", 2)])
async def test_sqlite_commits_reach_the_disk_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: str | None, level: int
) -> None:
    """FULL by default: a committed erasure or audit event survives a power cut, not only a crash."""
    if configured is not None:
        monkeypatch.setenv("PRIVACY_DATABASE__SQLITE_SYNCHRONOUS", configured)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}", data_dir=tmp_path)
    database = settings.open_database()
    try:
        async with database.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == level
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PRIVACY_DATABASE__SQLITE_SYNCHRONOUS", "off"), ("PRIVACY_DATABASE__SQLITE_AUDIT_CACHE_MB", "-1")],
)
def test_an_unknown_sqlite_synchronous_level_or_a_negative_audit_page_cache_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable.removeprefix("PRIVACY_DATABASE__")):
        Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}", data_dir=tmp_path)
