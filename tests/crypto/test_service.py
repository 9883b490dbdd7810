import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pytest_httpx import HTTPXMock

from privacy_middleware.crypto import (
    DecryptionFailed,
    KeyService,
    KeyServiceUnavailable,
    SubjectErased,
    is_envelope,
    is_token,
)
from privacy_middleware.errors import PrivacyError
from privacy_middleware.store import Database
from privacy_middleware.store.keys import key_tombstones, subject_keys, tenant_keys, token_vault

pytestmark = pytest.mark.anyio

CARD = "user.financial.card.number"
ADDRESS = "user.contact.address.delivery"
PAN = "4111 1111 1111 1111"


@pytest.fixture
def keys_url(tmp_path: Path) -> str:
    return f"local://{tmp_path}/keys/keyring.json"


@pytest.fixture
async def keys(database: Database, keys_url: str) -> AsyncIterator[KeyService]:
    service = await KeyService.open(keys_url, database=database, tenant="shop")
    yield service
    await service.close()


async def test_encrypt_decrypt_round_trip(keys: KeyService) -> None:
    token = await keys.encrypt(PAN, category=CARD, subject="cust-1")
    assert is_envelope(token) and token.startswith("pe1.") and PAN not in token
    assert await keys.decrypt(token, category=CARD, subject="cust-1") == PAN
    assert await keys.encrypt(PAN, category=CARD, subject="cust-1") != token


async def test_deterministic_values_compare_equal_within_subject_and_category(keys: KeyService) -> None:
    first = await keys.encrypt_deterministic("ada@example.com", category="user.contact.email", subject="cust-1")
    again = await keys.encrypt_deterministic("ada@example.com", category="user.contact.email", subject="cust-1")
    other = await keys.encrypt_deterministic("ada@example.com", category="user.contact.email", subject="cust-2")
    assert first == again and first.startswith("pd1.") and other != first
    assert await keys.decrypt(first, category="user.contact.email", subject="cust-1") == "ada@example.com"


async def test_values_do_not_open_for_another_subject_field_or_tenant(
    keys: KeyService, database: Database, keys_url: str
) -> None:
    token = await keys.encrypt(PAN, category=CARD, subject="cust-1")
    await keys.encrypt("x", category=CARD, subject="cust-2")
    for category, subject in [(CARD, "cust-2"), (ADDRESS, "cust-1"), (CARD, "cust-unknown")]:
        with pytest.raises(DecryptionFailed) as info:
            await keys.decrypt(token, category=category, subject=subject)
        assert "cust" not in info.value.message and "4111" not in info.value.message
    other_tenant = await KeyService.open(keys_url, database=database, tenant="other-shop")
    try:
        with pytest.raises(DecryptionFailed):
            await other_tenant.decrypt(token, category=CARD, subject="cust-1")
    finally:
        await other_tenant.close()


async def test_encrypting_an_envelope_never_encrypts_twice(keys: KeyService) -> None:
    token = await keys.encrypt(PAN, category=CARD, subject="cust-1")
    assert await keys.encrypt(token, category=CARD, subject="cust-1") == token
    deterministic = await keys.encrypt_deterministic(token, category=CARD, subject="cust-1")
    assert deterministic.startswith("pd1.")
    assert await keys.decrypt(deterministic, category=CARD, subject="cust-1") == PAN
    assert await keys.encrypt_deterministic(deterministic, category=CARD, subject="cust-1") == deterministic
    converted = await keys.encrypt(deterministic, category=CARD, subject="cust-1")
    assert converted.startswith("pe1.") and await keys.decrypt(converted, category=CARD, subject="cust-1") == PAN
    # someone else's envelope submitted as "already encrypted" is refused, not stored
    with pytest.raises(DecryptionFailed):
        await keys.encrypt(token, category=CARD, subject="cust-2")


@pytest.mark.parametrize("value", ["4111111111111111", "pe1.garbage", "pe1.AAAAAAAAAAA." + "A" * 60, ""])
async def test_legacy_plaintext_and_garbage_never_decrypt_to_themselves(keys: KeyService, value: str) -> None:
    with pytest.raises(PrivacyError) as info:
        await keys.decrypt(value, category=CARD, subject="cust-1")
    assert info.value.code in {"decryption_failed", "invalid_key_context"}


async def test_empty_context_is_refused(keys: KeyService) -> None:
    with pytest.raises(PrivacyError) as info:
        await keys.encrypt(PAN, category=CARD, subject="")
    assert info.value.code == "invalid_key_context" and info.value.status == 400


async def test_tokens_round_trip_and_stay_bound(keys: KeyService) -> None:
    token = await keys.tokenise(PAN, category=CARD, subject="cust-1")
    assert is_token(token) and not is_envelope(token)
    assert await keys.tokenise(token, category=CARD, subject="cust-1") == token
    assert await keys.detokenise(token, category=CARD, subject="cust-1") == PAN
    with pytest.raises(DecryptionFailed):
        await keys.detokenise(token, category=CARD, subject="cust-2")
    with pytest.raises(DecryptionFailed):
        await keys.detokenise(token, category=ADDRESS, subject="cust-1")
    with pytest.raises(DecryptionFailed):
        await keys.detokenise("tok_" + "A" * 22, category=CARD, subject="cust-1")
    with pytest.raises(DecryptionFailed):
        await keys.detokenise(PAN, category=CARD, subject="cust-1")


async def test_token_vault_holds_no_plaintext(keys: KeyService, database: Database) -> None:
    token = await keys.tokenise(PAN, category=CARD, subject="cust-1")
    async with database.connect() as conn:
        rows = (await conn.execute(sa.select(token_vault))).all()
    assert len(rows) == 1 and token not in str(rows[0]) and "4111" not in str(rows[0])


async def test_blind_index_is_keyed_normalised_and_per_category(
    keys: KeyService, database: Database, keys_url: str
) -> None:
    email = "user.contact.email"
    first = await keys.blind_index("Ada.Lovelace@Example.com ", category=email)
    assert first == await keys.blind_index("  ada.lovelace@example.COM", category=email)
    assert first != await keys.blind_index("ada.lovelace@example.com", category="user.contact.email.work")
    assert await keys.blind_index("4111-1111 1111 1111", category=CARD) == await keys.blind_index(
        "4111111111111111", category=CARD
    )
    import hashlib

    assert hashlib.sha256(b"4111111111111111").hexdigest() not in await keys.blind_index(PAN, category=CARD)
    other = await KeyService.open(keys_url, database=database, tenant="other-shop")
    try:
        assert await other.blind_index("ada.lovelace@example.com", category=email) != first
    finally:
        await other.close()


async def test_store_holds_no_subject_identifier_or_clear_key(keys: KeyService, database: Database) -> None:
    await keys.encrypt(PAN, category=CARD, subject="customer-4242")
    await keys.erase_subject("customer-4242")
    await keys.encrypt(PAN, category=CARD, subject="customer-4242")
    async with database.connect() as conn:
        dump = [str(r) for t in (subject_keys, key_tombstones, tenant_keys) for r in (await conn.execute(sa.select(t)))]
    assert dump and not any("customer-4242" in row for row in dump)


# -- erasure -----------------------------------------------------------------------------------


async def test_erasure_shreds_every_value_and_a_returning_customer_starts_fresh(keys: KeyService) -> None:
    old = await keys.encrypt(PAN, category=CARD, subject="cust-1")
    old_det = await keys.encrypt_deterministic("ada@example.com", category="user.contact.email", subject="cust-1")
    old_token = await keys.tokenise("1 Main St", category=ADDRESS, subject="cust-1")
    neighbour = await keys.encrypt(PAN, category=CARD, subject="cust-2")

    result = await keys.erase_subject("cust-1")
    assert (result.keys_destroyed, result.tokens_destroyed, result.root_side_recorded) == (1, 1, True)

    for value, category in [(old, CARD), (old_det, "user.contact.email")]:
        with pytest.raises(SubjectErased) as info:
            await keys.decrypt(value, category=category, subject="cust-1")
        assert info.value.code == "subject_erased" and info.value.status == 410
    with pytest.raises(SubjectErased):
        await keys.detokenise(old_token, category=ADDRESS, subject="cust-1")
    assert await keys.decrypt(neighbour, category=CARD, subject="cust-2") == PAN

    fresh = await keys.encrypt(PAN, category=CARD, subject="cust-1")
    assert fresh.split(".")[1] != old.split(".")[1]
    assert await keys.decrypt(fresh, category=CARD, subject="cust-1") == PAN
    with pytest.raises(SubjectErased):
        await keys.decrypt(old, category=CARD, subject="cust-1")


async def test_restored_key_row_does_not_come_back(keys: KeyService, database: Database, keys_url: str) -> None:
    old = await keys.encrypt(PAN, category=CARD, subject="cust-1")
    kid = old.split(".")[1]
    async with database.connect() as conn:
        backup = (await conn.execute(sa.select(subject_keys).where(subject_keys.c.kid == kid))).mappings().one()
    await keys.erase_subject("cust-1")
    async with database.begin() as conn:
        await conn.execute(subject_keys.insert().values(**backup))

    for service in (keys, await KeyService.open(keys_url, database=database, tenant="shop")):
        with pytest.raises(SubjectErased):
            await service.decrypt(old, category=CARD, subject="cust-1")
        fresh = await service.encrypt("new card", category=CARD, subject="cust-1")
        assert fresh.split(".")[1] != kid
        if service is not keys:
            await service.close()
    async with database.connect() as conn:
        kids = set((await conn.execute(sa.select(subject_keys.c.kid))).scalars())
    assert kid not in kids


async def test_whole_database_restored_from_before_erasure_is_shredded_again_at_start(
    database: Database, keys_url: str
) -> None:
    keys = await KeyService.open(keys_url, database=database, tenant="shop")
    old = await keys.encrypt(PAN, category=CARD, subject="cust-1")
    token = await keys.tokenise("1 Main St", category=ADDRESS, subject="cust-1")
    async with database.connect() as conn:
        key_rows = (await conn.execute(sa.select(subject_keys))).mappings().all()
        token_rows = (await conn.execute(sa.select(token_vault))).mappings().all()
    await keys.erase_subject("cust-1")
    await keys.close()

    # the backup predates the erasure: keys and tokens are back, the store's tombstones are gone
    async with database.begin() as conn:
        await conn.execute(key_tombstones.delete())
        await conn.execute(subject_keys.insert(), [dict(r) for r in key_rows])
        await conn.execute(token_vault.insert(), [dict(r) for r in token_rows])

    restarted = await KeyService.open(keys_url, database=database, tenant="shop")
    try:
        with pytest.raises(SubjectErased):
            await restarted.decrypt(old, category=CARD, subject="cust-1")
        with pytest.raises(SubjectErased):
            await restarted.detokenise(token, category=ADDRESS, subject="cust-1")
        status = await restarted.status()
        assert status.tombstones == 1 and status.tokens == 0 and sum(g.subject_keys for g in status.generations) == 0
    finally:
        await restarted.close()


async def test_erasing_an_unknown_subject_still_leaves_a_tombstone(keys: KeyService) -> None:
    result = await keys.erase_subject("never-seen")
    assert result.keys_destroyed == 0 and result.tombstones_written == 1
    assert (await keys.status()).tombstones == 1


# -- rotation ----------------------------------------------------------------------------------


async def test_rotate_then_interrupted_rewrap_resumes_and_keeps_data_readable(
    keys: KeyService, database: Database, keys_url: str, tmp_path: Path
) -> None:
    values = {f"cust-{n}": await keys.encrypt(f"card {n}", category=CARD, subject=f"cust-{n}") for n in range(23)}
    rotation = await keys.rotate()
    assert (rotation.previous_generation, rotation.generation, rotation.root_version) == (1, 2, "2")
    assert rotation.pending_rewrap == 23
    assert (await keys.status()).subject_keys_by_generation == {1: 23, 2: 0}
    # new subjects go straight onto the new generation
    values["cust-new"] = await keys.encrypt("card new", category=CARD, subject="cust-new")

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(done: int, total: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        await keys.rewrap(batch_size=10, progress=stop_after_first_batch)
    status = await keys.status()
    assert status.subject_keys_by_generation == {1: 13, 2: 11} and status.pending_rewrap == 13

    seen: list[tuple[int, int]] = []
    result = await keys.rewrap(batch_size=10, progress=lambda done, total: seen.append((done, total)))
    assert (result.rewrapped, result.remaining, result.failed) == (13, 0, 0)
    assert seen[-1] == (13, 13)
    status = await keys.status()
    assert status.subject_keys_by_generation == {1: 0, 2: 24}
    assert status.subject_keys_by_root_version == {"2": 24}
    assert status.root_versions == ("1", "2") and status.index_key_root_version == "2"

    fresh = await KeyService.open(keys_url, database=database, tenant="shop")
    try:
        for subject, token in values.items():
            assert (await fresh.decrypt(token, category=CARD, subject=subject)).startswith("card")
    finally:
        await fresh.close()
    keyring = json.loads((tmp_path / "keys" / "keyring.json").read_text())
    assert keyring["primary"] == 2 and [v["version"] for v in keyring["versions"]] == [1, 2]


# -- a remote root: fake Vault Transit behind pytest-httpx --------------------------------------


class FakeTransit:
    """Enough of Vault Transit to run the service against: versions, encrypt, decrypt, rewrap."""

    def __init__(self) -> None:
        self.version = 1
        self.sealed: dict[str, bytes] = {}
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["X-Vault-Token"] == "hvs.fake"
        operation = request.url.path.split("/")[3]
        self.calls.append(operation)
        body = json.loads(request.content or b"{}")
        if operation == "keys":
            self.version += 1
            return httpx.Response(200, json={"data": {"latest_version": self.version}})
        if operation == "encrypt":
            return httpx.Response(200, json={"data": {"ciphertext": self._seal(base64.b64decode(body["plaintext"]))}})
        if operation == "rewrap":
            return httpx.Response(200, json={"data": {"ciphertext": self._seal(self.sealed[body["ciphertext"]])}})
        plain = self.sealed.get(body["ciphertext"])
        if plain is None:
            return httpx.Response(400, json={"errors": ["invalid ciphertext"]})
        return httpx.Response(200, json={"data": {"plaintext": base64.b64encode(plain).decode()}})

    def _seal(self, plain: bytes) -> str:
        ciphertext = f"vault:v{self.version}:" + base64.b64encode(f"c{len(self.sealed)}".encode()).decode()
        self.sealed[ciphertext] = plain
        return ciphertext


@pytest.fixture
def vault_url(tmp_path: Path) -> str:
    token = tmp_path / "token"
    token.write_text("hvs.fake")
    return f"vault+https://vault.example:8200/transit/shop?token_file={token}"


VAULT_ROUTE = re.compile(r"https://vault\.example:8200/v1/transit/.*")


async def test_cold_cache_makes_one_key_service_call_per_key_under_concurrency(
    database: Database, vault_url: str, httpx_mock: HTTPXMock
) -> None:
    transit = FakeTransit()
    httpx_mock.add_callback(transit, url=VAULT_ROUTE, is_reusable=True)
    async with httpx.AsyncClient() as http:
        warm = await KeyService.open(vault_url, database=database, tenant="shop", http=http)
        tokens = [await warm.encrypt(f"v{n}", category=CARD, subject=f"s{n % 5}") for n in range(40)]
        assert transit.calls == ["encrypt", "encrypt"]  # index key + generation-1 key, nothing per value
        await warm.close()

        cold = await KeyService.open(vault_url, database=database, tenant="shop", http=http)
        transit.calls.clear()
        results = await asyncio.gather(
            *(cold.decrypt(t, category=CARD, subject=f"s{n % 5}") for n, t in enumerate(tokens))
        )
        assert results == [f"v{n}" for n in range(40)]
        assert transit.calls == ["decrypt", "decrypt"]  # one unwrap per tenant key, not one per request
        await cold.close()


async def test_vault_rotation_rewraps_keys_without_touching_data(
    database: Database, vault_url: str, httpx_mock: HTTPXMock
) -> None:
    transit = FakeTransit()
    httpx_mock.add_callback(transit, url=VAULT_ROUTE, is_reusable=True)
    async with httpx.AsyncClient() as http:
        keys = await KeyService.open(vault_url, database=database, tenant="shop", http=http)
        token = await keys.encrypt(PAN, category=CARD, subject="cust-1")
        rotation = await keys.rotate()
        assert rotation.root_version == "2" and "keys" in transit.calls
        result = await keys.rewrap()
        assert result.rewrapped == 1 and result.tenant_keys_rewrapped == 2 and transit.calls.count("rewrap") == 2
        status = await keys.status()
        assert {g.root_version for g in status.generations} == {"2"} and status.index_key_root_version == "2"
        assert await keys.decrypt(token, category=CARD, subject="cust-1") == PAN
        await keys.close()


async def test_unreachable_vault_is_503_at_open(database: Database, vault_url: str, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=VAULT_ROUTE)
    async with httpx.AsyncClient() as http:
        with pytest.raises(KeyServiceUnavailable) as info:
            await KeyService.open(vault_url, database=database, tenant="shop", http=http)
    assert info.value.status == 503


async def test_vault_outage_after_warm_up_does_not_affect_cached_keys(
    database: Database, vault_url: str, httpx_mock: HTTPXMock
) -> None:
    transit = FakeTransit()
    httpx_mock.add_callback(transit, url=VAULT_ROUTE)
    httpx_mock.add_callback(transit, url=VAULT_ROUTE)
    async with httpx.AsyncClient() as http:
        keys = await KeyService.open(vault_url, database=database, tenant="shop", http=http)
        httpx_mock.add_response(status_code=503, url=VAULT_ROUTE, is_reusable=True)
        token = await keys.encrypt(PAN, category=CARD, subject="cust-1")
        assert await keys.decrypt(token, category=CARD, subject="cust-1") == PAN
        with pytest.raises(KeyServiceUnavailable):
            await keys.rotate()
        await keys.close()


async def test_two_instances_creating_one_subject_key_agree(database: Database, keys_url: str) -> None:
    first = await KeyService.open(keys_url, database=database, tenant="shop")
    second = await KeyService.open(keys_url, database=database, tenant="shop")
    try:
        a, b = await asyncio.gather(
            first.encrypt("x", category=CARD, subject="cust-1"),
            second.encrypt("y", category=CARD, subject="cust-1"),
        )
        assert a.split(".")[1] == b.split(".")[1]
        assert await first.decrypt(b, category=CARD, subject="cust-1") == "y"
    finally:
        await first.close()
        await second.close()


async def test_vault_erasure_uses_the_tombstone_file_to_survive_a_database_restore(
    database: Database, vault_url: str, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    transit = FakeTransit()
    httpx_mock.add_callback(transit, url=VAULT_ROUTE, is_reusable=True)
    journal = tmp_path / "journal" / "tombstones"
    url = f"{vault_url}&tombstone_file={journal}"
    async with httpx.AsyncClient() as http:
        keys = await KeyService.open(url, database=database, tenant="shop", http=http)
        old = await keys.encrypt(PAN, category=CARD, subject="cust-1")
        async with database.connect() as conn:
            backup = (await conn.execute(sa.select(subject_keys))).mappings().all()
        assert (await keys.erase_subject("cust-1")).root_side_recorded
        await keys.close()
        assert oct(journal.stat().st_mode & 0o777) == "0o600" and "cust-1" not in journal.read_text()

        async with database.begin() as conn:
            await conn.execute(key_tombstones.delete())
            await conn.execute(subject_keys.insert(), [dict(r) for r in backup])
        restarted = await KeyService.open(url, database=database, tenant="shop", http=http)
        with pytest.raises(SubjectErased):
            await restarted.decrypt(old, category=CARD, subject="cust-1")
        await restarted.close()

        without_journal = await KeyService.open(vault_url, database=database, tenant="shop", http=http)
        assert not (await without_journal.erase_subject("cust-2")).root_side_recorded
        await without_journal.close()


async def test_a_subject_sealer_seals_values_that_open_only_in_their_own_field_and_subject(keys: KeyService) -> None:
    sealer = await keys.subject_sealer("cust-1")
    assert keys.cached_sealer("cust-1") is sealer  # kept with the cached key, not rebuilt per request
    categories = (CARD, ADDRESS, ADDRESS)
    values = [PAN, "12 Marylebone Road", "Ünïcödé 1"]
    for _ in range(2):  # the second call uses the contexts the first one checked and kept
        tokens = sealer.encrypt_values(values, categories)
        assert len(tokens) == 3 and all(is_envelope(t) and t.startswith("pe1.") for t in tokens)
        for token, value, category in zip(tokens, values, categories, strict=True):
            assert await keys.decrypt(token, category=category, subject="cust-1") == value
        with pytest.raises(DecryptionFailed):
            await keys.decrypt(tokens[0], category=ADDRESS, subject="cust-1")
        with pytest.raises(DecryptionFailed):
            await keys.decrypt(tokens[1], category=ADDRESS, subject="cust-2")
    assert sealer.encrypt_values([PAN], (CARD,))[0] != tokens[0]
    with pytest.raises(PrivacyError) as refused:
        sealer.encrypt_values(["x"], ("",))
    assert refused.value.code == "invalid_key_context"
    with pytest.raises(PrivacyError) as invalid:
        sealer.encrypt_values(["\ud800"], (CARD,))
    assert invalid.value.code == "invalid_value"
    assert sealer.encrypt_values([], ()) == []
