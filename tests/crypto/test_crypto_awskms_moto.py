"""The AWS KMS provider against moto's KMS in server mode on loopback: real HTTP, real SigV4
signing, real key material; and its answers when the service is down or refuses a disabled key."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import httpx
import pytest

from privacy_middleware.crypto.errors import DecryptionFailed, KeyServiceUnavailable
from privacy_middleware.crypto.providers import open_provider
from support.ports import free_port

pytestmark = pytest.mark.anyio
CONTEXT = {"tenant": "shop", "purpose": "subject-keys"}


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def kms_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "kms",
        region_name="eu-west-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


async def test_wrap_and_unwrap_through_moto_kms(moto_endpoint: str, aws_credentials: None) -> None:
    key_id = kms_client(moto_endpoint).create_key()["KeyMetadata"]["KeyId"]
    async with httpx.AsyncClient() as http:
        kms = await open_provider(f"awskms://{key_id}?region=eu-west-1&endpoint={moto_endpoint}", http=http)
        key, wrapped = await kms.generate(context=CONTEXT)
        assert len(key) == 32 and key_id in wrapped.root_version
        assert await kms.unwrap(wrapped, context=CONTEXT) == key
        rewrapped = await kms.wrap(key, context=CONTEXT)
        assert await kms.unwrap(rewrapped, context=CONTEXT) == key
        with pytest.raises(DecryptionFailed):  # the context is part of what KMS authenticates
            await kms.unwrap(wrapped, context={**CONTEXT, "tenant": "other-shop"})


async def test_an_unknown_key_missing_credentials_and_a_stopped_service_answer_unavailable(
    moto_endpoint: str, aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = kms_client(moto_endpoint)
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    async with httpx.AsyncClient() as http:
        kms = await open_provider(f"awskms://{key_id}?region=eu-west-1&endpoint={moto_endpoint}", http=http)
        _, wrapped = await kms.generate(context=CONTEXT)
        unknown = await open_provider(
            f"awskms://alias/no-such-key?region=eu-west-1&endpoint={moto_endpoint}", http=http
        )
        with pytest.raises(KeyServiceUnavailable):  # NotFoundException (400): refused, not a bad ciphertext
            await unknown.generate(context=CONTEXT)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "")  # credentials gone: said so, nothing sent
        with pytest.raises(KeyServiceUnavailable):
            await kms.unwrap(wrapped, context=CONTEXT)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        stopped = await open_provider(
            f"awskms://{key_id}?region=eu-west-1&endpoint=http://127.0.0.1:{free_port()}", http=http
        )
        with pytest.raises(KeyServiceUnavailable):  # nothing listening: the key service is down
            await stopped.unwrap(wrapped, context=CONTEXT)
