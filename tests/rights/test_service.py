"""The rights service's own guarantees: one erasure at a time, flags shared through Redis,
and the export reveals values through the field engine only for the subject."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from privacy_middleware.crypto.errors import KeyServiceUnavailable
from privacy_middleware.rights.adapter import ShopAdapterError, ShopRecord
from privacy_middleware.rights.export import reveal_record
from privacy_middleware.rights.flags import SubjectFlagsCache, flags_key
from privacy_middleware.rights.receipts import verify_erasure_receipt
from privacy_middleware.store import Database
from privacy_middleware.store.bus import RedisBus

pytestmark = pytest.mark.anyio
REDIS_URL = "redis://127.0.0.1:6379/0"


class CountingShop:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.erasures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> Any:
        self.erasures += 1
        await asyncio.sleep(0.01)
        return await self.inner.erase(subject, keep_for_legal_hold=keep_for_legal_hold)


async def test_concurrent_erasures_of_one_subject_run_once(rights: Any) -> None:
    subject, _, _ = await rights.customer_with_order()
    shop = CountingShop(rights.adapter)
    rights.service.adapter = shop
    results = await asyncio.gather(*[rights.service.erase(subject, principal=subject) for _ in range(4)])
    assert len({r.id for r in results}) == 1
    assert {r.status for r in results} == {"completed"}
    assert len({(r.result or {})["receipt"] for r in results}) == 1
    assert shop.erasures == 1
    assert rights.service._locks == {} and rights.service._waiting == {}


async def test_a_protected_value_of_someone_else_is_not_revealed_in_an_export(rights: Any) -> None:
    victim, _, _ = await rights.customer_with_order()
    stored = (await rights.adapter.records(victim))[-1]
    assert stored.data["shipping_address"]["street"].startswith("pe1.")
    # A record that claims to be someone else's order: the victim's ciphertext is bound to the victim.
    forged = ShopRecord(kind="order", id="x", data={**stored.data, "customer_id": "cus_attacker"}, shape="order")
    revealed = await reveal_record(rights.service.fields, rights.service.policy, forged, "cus_attacker")
    assert revealed["data"]["shipping_address"]["street"] == {
        "error": "unreadable",
        "code": "decryption_failed",
    }
    assert revealed["unreadable_fields"] >= 1
    assert "12 Marylebone Road" not in repr(revealed)


@pytest.mark.redis
async def test_flag_changes_reach_other_instances_through_redis(sqlite_url: str, redis_prefix: str) -> None:
    database = Database(sqlite_url)
    await database.upgrade()
    one, two = RedisBus(REDIS_URL, prefix=redis_prefix), RedisBus(REDIS_URL, prefix=redis_prefix)
    first = SubjectFlagsCache(database, bus=one, ttl=3600)
    second = SubjectFlagsCache(database, bus=two, ttl=3600)
    await one.start()
    await two.start()
    try:
        assert (await second.get("cus_1")).restricted is False  # cached for an hour on instance two
        await first.set("cus_1", restricted=True, add_objections=["analytics"])
        for _ in range(200):
            if (await second.get("cus_1")).restricted:
                break
            await asyncio.sleep(0.01)
        flags = await second.get("cus_1")
        assert flags.restricted and flags.objects_to("analytics")
    finally:
        await one.close()
        await two.close()
        await database.dispose()


def test_the_bus_never_carries_the_subject_id() -> None:
    key = flags_key("cus_ada")
    assert "cus_ada" not in key and len(key) == 32 and key == flags_key("cus_ada") != flags_key("cus_bob")


class KeysDown:
    """The key service handle while the key provider is unreachable for crypto-shredding."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self) -> Any:
        if self.down:
            raise KeyServiceUnavailable()
        return await self.inner.get()


async def test_a_key_service_outage_after_the_shop_step_is_resumed_without_redoing_the_shop(
    rights: Any,
) -> None:
    subject, _, _ = await rights.customer_with_order()
    keys = KeysDown(rights.service.keys)
    shop = CountingShop(rights.adapter)
    rights.service.keys, rights.service.adapter = keys, shop
    stuck = await rights.service.erase(subject, principal=subject)
    assert stuck.is_open and stuck.failed_step == "keys"
    assert stuck.error == "key service failed (KeyServiceUnavailable)"
    assert await rights.adapter.records(subject) == []  # the shop's data went first
    keys.down = False
    [done] = await rights.service.retry_open()
    assert done.status == "completed" and shop.erasures == 1
    claims = verify_erasure_receipt(done.result["receipt"], rights.signing_key.public_key())
    assert claims["crypto_shredding"]["keys_destroyed"] == 1 and claims["shop"]["anonymised"]


class ShopDown:
    name = "down"

    async def records(self, subject: str) -> Any:
        raise ShopAdapterError("the shop API answered 503 while listing records", retryable=True)


async def test_an_export_the_shop_cannot_serve_fails_its_request_and_answers_503(rights: Any) -> None:
    subject, token = await rights.demo.register()
    rights.service.adapter = ShopDown()
    response = await rights.client.get("/privacy/me/export", headers=rights.auth(token))
    assert response.status_code == 503 and response.json()["code"] == "export_unavailable"
    [failed] = await rights.service.requests_of(subject)
    assert failed.status == "failed" and failed.error == "the shop API answered 503 while listing records"


async def test_an_export_repeated_with_its_idempotency_key_is_one_request(rights: Any) -> None:
    subject, token = await rights.demo.register()
    headers = {**rights.auth(token), "idempotency-key": "export-1"}
    first = await rights.client.get("/privacy/me/export", headers=headers)
    second = await rights.client.get("/privacy/me/export", headers=headers)
    assert first.headers["x-privacy-request-id"] == second.headers["x-privacy-request-id"]
    [request] = await rights.service.requests_of(subject)
    assert [s.name for s in request.steps] == ["received", "export"]
