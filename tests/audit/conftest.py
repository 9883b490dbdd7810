"""Fixtures for the audit tests: a signing key on disk, a log, and a writer factory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from privacy_middleware.audit import AuditLog, AuditWriter
from privacy_middleware.store import Database


@pytest.fixture
def side_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "audit-signing.pem"


@pytest.fixture
def audit_log(key_path: Path, side_key: bytes) -> AuditLog:
    return AuditLog(key_path, side_key, checkpoint_every=10, checkpoint_interval=3600)


@pytest.fixture
async def make_writer(tmp_path: Path, audit_log: AuditLog) -> AsyncIterator[Callable[..., AuditWriter]]:
    """Build writers that are stopped at the end of the test if the test did not stop them."""
    made: list[AuditWriter] = []

    def build(database: Database, log: AuditLog | None = None, **options: Any) -> AuditWriter:
        options.setdefault("spool_dir", tmp_path / "spool")
        options.setdefault("flush_interval", 0.02)
        options.setdefault("registry", CollectorRegistry())
        writer = AuditWriter(database, log or audit_log, **options)
        made.append(writer)
        return writer

    yield build
    for writer in made:
        await writer.stop()
