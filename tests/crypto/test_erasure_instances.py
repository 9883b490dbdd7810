"""Crypto-shredding holds on every instance at once, not after the other instances' caches expire."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from privacy_middleware.crypto.errors import SubjectErased
from privacy_middleware.crypto.handle import KeyServiceHandle
from privacy_middleware.store import Database
from privacy_middleware.store.bus import RedisBus

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]


async def test_erasure_on_one_instance_evicts_cached_keys_on_the_other(
    tmp_path: Path, postgres_url: str, redis_prefix: str
) -> None:
    keys_url = f"local://{tmp_path / 'keyring.json'}"
    async with AsyncExitStack() as stack:
        handles = []
        for _ in range(2):
            database = Database(postgres_url)
            stack.push_async_callback(database.dispose)
            await database.upgrade()
            bus = RedisBus("redis://127.0.0.1:6379/0", prefix=redis_prefix)
            handle = KeyServiceHandle(keys_url, database=database, tenant="shop", http=None, bus=bus)
            await bus.start()
            stack.push_async_callback(bus.close)
            stack.push_async_callback(handle.close)
            handles.append(handle)
        first, second = handles
        token = await first.encrypt("12 Marylebone Road", category="user.contact.address", subject="cus_1")
        # The second instance reads it, so the subject's key now sits in its cache (TTL 300 s).
        assert await second.decrypt(token, category="user.contact.address", subject="cus_1") == "12 Marylebone Road"
        await (await first.get()).erase_subject("cus_1")
        erased_at = time.monotonic()
        while True:
            try:
                await second.decrypt(token, category="user.contact.address", subject="cus_1")
            except SubjectErased:
                break
            assert time.monotonic() - erased_at < 1.0, "the other instance still decrypts a second after erasure"
            await asyncio.sleep(0.02)
