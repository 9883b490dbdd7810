import base64
import json
import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pytest_httpx import HTTPXMock

from privacy_middleware.crypto import DecryptionFailed, KeyServiceUnavailable
from privacy_middleware.crypto.providers import (
    AwsKmsProvider,
    LocalKeyringProvider,
    VaultTransitProvider,
    WrappedKey,
    open_provider,
)
from privacy_middleware.crypto.providers.sigv4 import Credentials, sign
from privacy_middleware.crypto.providers.vault import _binding
from privacy_middleware.errors import ConfigError

pytestmark = pytest.mark.anyio

CONTEXT = {"tenant": "shop", "purpose": "kek", "generation": "1"}
VAULT = "https://vault.example:8200"
TOKEN = "hvs.test-token-value"
KEY = bytes(range(32))


@pytest.fixture
async def http() -> httpx.AsyncClient:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "vault-token"
    path.write_text(TOKEN + "\n")
    return str(path)


@pytest.fixture
def vault(http: httpx.AsyncClient, token_file: str) -> VaultTransitProvider:
    return VaultTransitProvider(base_url=VAULT, mount="transit", key="shop-root", http=http, token_file=token_file)


def vault_plaintext(key: bytes = KEY, context: dict[str, str] = CONTEXT) -> str:
    return base64.b64encode(key + _binding(context)).decode()


# -- Vault Transit -----------------------------------------------------------------------------


async def test_vault_wrap_sends_the_exact_transit_encrypt_request(
    vault: VaultTransitProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{VAULT}/v1/transit/encrypt/shop-root",
        match_headers={"X-Vault-Token": TOKEN},
        match_json={"plaintext": vault_plaintext()},
        json={"data": {"ciphertext": "vault:v3:c2VhbGVk", "key_version": 3}},
    )
    assert await vault.wrap(KEY, context=CONTEXT) == WrappedKey("3", "vault:v3:c2VhbGVk")


async def test_vault_unwrap_checks_the_context_bound_inside(vault: VaultTransitProvider, httpx_mock: HTTPXMock) -> None:
    for _ in range(2):
        httpx_mock.add_response(
            method="POST",
            url=f"{VAULT}/v1/transit/decrypt/shop-root",
            match_headers={"X-Vault-Token": TOKEN},
            match_json={"ciphertext": "vault:v3:c2VhbGVk"},
            json={"data": {"plaintext": vault_plaintext()}},
        )
    wrapped = WrappedKey("3", "vault:v3:c2VhbGVk")
    assert await vault.unwrap(wrapped, context=CONTEXT) == KEY
    with pytest.raises(DecryptionFailed):
        await vault.unwrap(wrapped, context={**CONTEXT, "tenant": "other-shop"})


async def test_vault_rewrap_and_rotate_use_their_endpoints(vault: VaultTransitProvider, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{VAULT}/v1/transit/keys/shop-root/rotate",
        match_headers={"X-Vault-Token": TOKEN},
        json={"data": {"latest_version": 4}},
    )
    httpx_mock.add_response(
        method="POST",
        url=f"{VAULT}/v1/transit/rewrap/shop-root",
        match_json={"ciphertext": "vault:v3:c2VhbGVk"},
        json={"data": {"ciphertext": "vault:v4:bmV3"}},
    )
    assert await vault.rotate() == "4"
    assert await vault.rewrap(WrappedKey("3", "vault:v3:c2VhbGVk"), context=CONTEXT) == WrappedKey("4", "vault:v4:bmV3")
    rotate_request = httpx_mock.get_requests()[0]
    assert rotate_request.content == b""


@pytest.mark.parametrize("status", [500, 502, 503, 429, 403])
async def test_vault_outages_and_refusals_are_503(
    vault: VaultTransitProvider, httpx_mock: HTTPXMock, status: int
) -> None:
    httpx_mock.add_response(status_code=status, json={"errors": [f"boom {TOKEN}"]})
    with pytest.raises(KeyServiceUnavailable) as info:
        await vault.wrap(KEY, context=CONTEXT)
    assert info.value.status == 503 and info.value.code == "key_service_unavailable"
    assert TOKEN not in info.value.message and "boom" not in info.value.message


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
async def test_vault_unreachable_or_slow_is_503(
    vault: VaultTransitProvider, httpx_mock: HTTPXMock, error: Exception
) -> None:
    httpx_mock.add_exception(error)
    with pytest.raises(KeyServiceUnavailable):
        await vault.unwrap(WrappedKey("1", "vault:v1:eA=="), context=CONTEXT)


async def test_vault_rejecting_a_ciphertext_is_a_decryption_failure(
    vault: VaultTransitProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(status_code=400, json={"errors": ["cipher: message authentication failed"]})
    with pytest.raises(DecryptionFailed):
        await vault.unwrap(WrappedKey("1", "vault:v1:eA=="), context=CONTEXT)


async def test_vault_unexpected_answer_is_503(vault: VaultTransitProvider, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json={"data": {"ciphertext": "not-vault"}})
    with pytest.raises(KeyServiceUnavailable):
        await vault.wrap(KEY, context=CONTEXT)


async def test_vault_token_is_reread_from_its_file(
    vault: VaultTransitProvider, token_file: str, httpx_mock: HTTPXMock
) -> None:
    Path(token_file).write_text("hvs.renewed")
    httpx_mock.add_response(
        match_headers={"X-Vault-Token": "hvs.renewed"}, json={"data": {"ciphertext": "vault:v1:eA=="}}
    )
    await vault.wrap(KEY, context=CONTEXT)


# -- AWS KMS -----------------------------------------------------------------------------------

KMS_URL = "https://kms.eu-west-1.amazonaws.com/"
ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
}


@pytest.fixture
def kms(http: httpx.AsyncClient) -> AwsKmsProvider:
    return AwsKmsProvider(key_id="alias/shop", region="eu-west-1", http=http, clock=lambda: NOW, environ=ENV)


def expected_headers(operation: str, body: dict[str, object]) -> dict[str, str]:
    return sign(
        credentials=Credentials(ENV["AWS_ACCESS_KEY_ID"], ENV["AWS_SECRET_ACCESS_KEY"]),
        method="POST",
        host="kms.eu-west-1.amazonaws.com",
        path="/",
        query="",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{operation}"},
        payload=json.dumps(body, separators=(",", ":")).encode(),
        region="eu-west-1",
        service="kms",
        now=NOW,
    )


async def test_kms_encrypt_is_a_signed_json_request(kms: AwsKmsProvider, httpx_mock: HTTPXMock) -> None:
    body = {"KeyId": "alias/shop", "Plaintext": base64.b64encode(KEY).decode(), "EncryptionContext": CONTEXT}
    headers = expected_headers("Encrypt", body)
    httpx_mock.add_response(
        method="POST",
        url=KMS_URL,
        match_json=body,
        match_headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "TrentService.Encrypt",
            "X-Amz-Date": "20261123T120000Z",
            "Authorization": headers["Authorization"],
        },
        json={"CiphertextBlob": "YmxvYg==", "KeyId": ARN},
    )
    assert await kms.wrap(KEY, context=CONTEXT) == WrappedKey(ARN, "YmxvYg==")
    assert (
        "Signature=" in headers["Authorization"] and "/20261123/eu-west-1/kms/aws4_request" in headers["Authorization"]
    )


async def test_kms_generate_and_decrypt(kms: AwsKmsProvider, httpx_mock: HTTPXMock) -> None:
    generate = {"KeyId": "alias/shop", "KeySpec": "AES_256", "EncryptionContext": CONTEXT}
    httpx_mock.add_response(
        url=KMS_URL,
        match_json=generate,
        match_headers={"X-Amz-Target": "TrentService.GenerateDataKey"},
        json={"CiphertextBlob": "YmxvYg==", "Plaintext": base64.b64encode(KEY).decode(), "KeyId": ARN},
    )
    decrypt = {"CiphertextBlob": "YmxvYg==", "EncryptionContext": CONTEXT, "KeyId": ARN}
    httpx_mock.add_response(
        url=KMS_URL,
        match_json=decrypt,
        match_headers={"X-Amz-Target": "TrentService.Decrypt"},
        json={"Plaintext": base64.b64encode(KEY).decode(), "KeyId": ARN},
    )
    key, wrapped = await kms.generate(context=CONTEXT)
    assert key == KEY and wrapped == WrappedKey(ARN, "YmxvYg==")
    assert await kms.unwrap(wrapped, context=CONTEXT) == KEY


@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        (400, "InvalidCiphertextException", DecryptionFailed),
        (400, "ThrottlingException", KeyServiceUnavailable),
        (400, "AccessDeniedException", KeyServiceUnavailable),
        (500, "KMSInternalException", KeyServiceUnavailable),
        (503, "", KeyServiceUnavailable),
    ],
)
async def test_kms_errors_are_mapped(
    kms: AwsKmsProvider, httpx_mock: HTTPXMock, status: int, error_type: str, expected: type[Exception]
) -> None:
    httpx_mock.add_response(status_code=status, json={"__type": error_type, "message": "details"})
    with pytest.raises(expected) as info:
        await kms.unwrap(WrappedKey(ARN, "YmxvYg=="), context=CONTEXT)
    assert ENV["AWS_SECRET_ACCESS_KEY"] not in str(info.value)


async def test_kms_timeout_is_503(kms: AwsKmsProvider, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectTimeout("slow"))
    with pytest.raises(KeyServiceUnavailable):
        await kms.wrap(KEY, context=CONTEXT)


async def test_kms_without_credentials_is_503_before_any_request(http: httpx.AsyncClient) -> None:
    provider = AwsKmsProvider(key_id="alias/shop", region="eu-west-1", http=http, environ={})
    with pytest.raises(KeyServiceUnavailable):
        await provider.wrap(KEY, context=CONTEXT)


# -- local keyring -----------------------------------------------------------------------------


async def test_keyring_is_created_private_with_a_loud_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "secrets" / "keyring.json"
    with caplog.at_level(logging.WARNING, logger="privacy_middleware.crypto"):
        provider = await LocalKeyringProvider.open(str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "DEVELOPMENT keyring" in caplog.text and str(path) in caplog.text
    assert await provider.root_versions() == ("1",)
    key = json.loads(path.read_text())["versions"][0]["key"]
    assert key not in caplog.text


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
async def test_keyring_readable_by_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keyring.json"
    await LocalKeyringProvider.open(str(path))
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as info:
        await LocalKeyringProvider.open(str(path))
    assert str(path) in str(info.value) and f"chmod 600 {path}" in str(info.value)


async def test_keyring_rotation_keeps_old_versions_for_decryption(tmp_path: Path) -> None:
    path = str(tmp_path / "keyring.json")
    provider = await LocalKeyringProvider.open(path)
    old = await provider.wrap(KEY, context=CONTEXT)
    assert await provider.rotate() == "2"
    new = await provider.wrap(KEY, context=CONTEXT)
    assert (old.root_version, new.root_version) == ("1", "2")
    other_process = await LocalKeyringProvider.open(path)
    assert await other_process.unwrap(old, context=CONTEXT) == KEY
    assert await other_process.unwrap(new, context=CONTEXT) == KEY
    assert (await other_process.rewrap(old, context=CONTEXT)).root_version == "2"
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(old, context={**CONTEXT, "generation": "2"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_keyring_records_tombstones(tmp_path: Path) -> None:
    path = str(tmp_path / "keyring.json")
    provider = await LocalKeyringProvider.open(path)
    assert await provider.record_tombstone("ts1:a:b:c")
    assert await provider.record_tombstone("ts1:a:b:c")
    assert await (await LocalKeyringProvider.open(path)).tombstones() == frozenset({"ts1:a:b:c"})


async def test_damaged_keyring_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_text('{"format": "something-else"}')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="not a privacy-middleware keyring"):
        await LocalKeyringProvider.open(str(path))


# -- PRIVACY_KEYS URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "local://relative/keyring.json",
        "file:///etc/keys",
        "vault+http://vault.example:8200/transit/k?token_file=/t",
        "vault+https://vault.example:8200/k?token_file=/t",
        "vault+https://vault.example:8200/transit/k?token_file=relative",
        "vault+https://vault.example:8200/transit/k?token_file=/t&tokne=x",
        "awskms://?region=eu-west-1",
    ],
)
async def test_bad_keys_urls_are_config_errors(url: str, http: httpx.AsyncClient) -> None:
    with pytest.raises(ConfigError):
        await open_provider(url, http=http)


async def test_keys_urls_pick_their_providers(
    tmp_path: Path, http: httpx.AsyncClient, token_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = await open_provider(f"local://{tmp_path}/keyring.json")
    assert isinstance(local, LocalKeyringProvider)
    vault = await open_provider(
        f"vault+https://vault.example:8200/secret/transit/shop?token_file={token_file}", http=http
    )
    assert isinstance(vault, VaultTransitProvider) and vault.mount == "secret/transit" and vault.key == "shop"
    dev = await open_provider(f"vault+http://127.0.0.1:8200/transit/shop?token_file={token_file}", http=http)
    assert isinstance(dev, VaultTransitProvider)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ConfigError):
        await open_provider(f"awskms://{ARN}", http=http)  # no credentials in the environment
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    kms = await open_provider(f"awskms://{ARN}", http=http)
    assert isinstance(kms, AwsKmsProvider) and kms.region == "eu-west-1" and kms.key_id == ARN
    assert TOKEN not in vault.description
