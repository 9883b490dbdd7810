"""`awskms://<key-id-or-arn>?region=eu-west-1`: AWS KMS as the root, over its JSON API.

Requests are `POST /` to `kms.<region>.amazonaws.com` with `X-Amz-Target: TrentService.<Op>`,
`Content-Type: application/x-amz-json-1.1` and a SigV4 signature made from AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and (optional) AWS_SESSION_TOKEN, read at each call so refreshed
credentials are picked up. The wrapping context travels as KMS EncryptionContext.
KMS rotates key material itself (enable automatic rotation on the key); `rotate` here starts a
new tenant key generation, and pointing the URL at a new KMS key followed by rotate + rewrap
moves every stored key to it. The root version recorded is the KMS key ARN.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from ...errors import ConfigError
from ..errors import KeyServiceUnavailable
from .base import RootKeyProvider, WrappedKey
from .http import json_body, raise_for_status, send
from .journal import TombstoneJournal
from .sigv4 import Credentials, sign
from .url import is_loopback, url_options

_REJECTED_CIPHERTEXT = {"InvalidCiphertextException", "IncorrectKeyException"}


def credentials_from_environment(environ: Mapping[str, str]) -> Credentials:
    access = environ.get("AWS_ACCESS_KEY_ID", "")
    secret = environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access or not secret:
        raise KeyServiceUnavailable("AWS credentials are not set (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
    return Credentials(access, secret, environ.get("AWS_SESSION_TOKEN") or None)


def _error_type(response: httpx.Response) -> str:
    """The AWS error name (e.g. ThrottlingException), only when it looks like one."""
    try:
        parsed = response.json()
    except ValueError:
        return ""
    name = str(parsed.get("__type", "")).rsplit("#", 1)[-1] if isinstance(parsed, dict) else ""
    return name if re.fullmatch(r"[A-Za-z]{1,64}", name) else ""


class AwsKmsProvider(RootKeyProvider):
    name = "awskms"

    def __init__(
        self,
        *,
        key_id: str,
        region: str,
        http: httpx.AsyncClient,
        endpoint: str | None = None,
        tombstone_file: str | None = None,
        clock: Callable[[], datetime] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not key_id or not region:
            raise ConfigError("PRIVACY_KEYS awskms:// needs a key id or ARN and ?region=")
        self.key_id = key_id
        self.region = region
        self.endpoint = (endpoint or f"https://kms.{region}.amazonaws.com").rstrip("/")
        self.http = http
        self.journal = TombstoneJournal(tombstone_file) if tombstone_file else None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._environ = environ if environ is not None else os.environ
        self.description = f"aws kms {region} key {key_id}"

    async def _call(self, operation: str, payload: dict[str, Any], *, unwrapping: bool = False) -> dict[str, Any]:
        body = orjson.dumps(payload)
        url = httpx.URL(f"{self.endpoint}/")
        headers = sign(
            credentials=credentials_from_environment(self._environ),
            method="POST",
            host=url.netloc.decode(),
            path=url.path,
            query=url.query.decode(),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"TrentService.{operation}",
            },
            payload=body,
            region=self.region,
            service="kms",
            now=self._clock(),
        )
        request = self.http.build_request("POST", url, content=body, headers=headers)
        response = await send(self.http, request)
        if response.status_code >= 300:
            error_type = _error_type(response)
            rejected = error_type in _REJECTED_CIPHERTEXT
            if response.status_code == 400 and not rejected:
                # KMS answers 400 for throttling, access denial and disabled keys alike
                if error_type == "AccessDeniedException":
                    raise KeyServiceUnavailable("AWS KMS refused our credentials (AccessDeniedException)")
                raise KeyServiceUnavailable(f"AWS KMS refused the request ({error_type or 'HTTP 400'})")
            raise_for_status(response, unwrapping=unwrapping, rejected_ciphertext=rejected)
        return json_body(response)

    @staticmethod
    def _blob(answer: dict[str, Any], field: str) -> bytes:
        value = answer.get(field)
        try:
            return base64.b64decode(value if isinstance(value, str) else "", validate=True)
        except (binascii.Error, ValueError):
            raise KeyServiceUnavailable("AWS KMS sent an unexpected answer") from None

    def _wrapped(self, answer: dict[str, Any]) -> WrappedKey:
        blob = answer.get("CiphertextBlob")
        arn = answer.get("KeyId")
        if not isinstance(blob, str) or not blob or not isinstance(arn, str) or not arn:
            raise KeyServiceUnavailable("AWS KMS sent an unexpected answer")
        return WrappedKey(arn, blob)

    async def generate(self, *, context: Mapping[str, str]) -> tuple[bytes, WrappedKey]:
        answer = await self._call(
            "GenerateDataKey",
            {"KeyId": self.key_id, "KeySpec": "AES_256", "EncryptionContext": dict(context)},
        )
        key = self._blob(answer, "Plaintext")
        if len(key) != 32:
            raise KeyServiceUnavailable("AWS KMS sent an unexpected answer")
        return key, self._wrapped(answer)

    async def wrap(self, key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        answer = await self._call(
            "Encrypt",
            {
                "KeyId": self.key_id,
                "Plaintext": base64.b64encode(key).decode(),
                "EncryptionContext": dict(context),
            },
        )
        return self._wrapped(answer)

    async def unwrap(self, wrapped: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        answer = await self._call(
            "Decrypt",
            {
                "CiphertextBlob": wrapped.blob,
                "EncryptionContext": dict(context),
                "KeyId": wrapped.root_version,
            },
            unwrapping=True,
        )
        key = self._blob(answer, "Plaintext")
        if len(key) != 32:
            raise KeyServiceUnavailable("AWS KMS sent an unexpected answer")
        return key

    async def rotate(self) -> str | None:
        return None

    async def record_tombstone(self, marker: str) -> bool:
        if self.journal is None:
            return False
        await self.journal.record(marker)
        return True

    async def tombstones(self) -> frozenset[str]:
        return await self.journal.load() if self.journal else frozenset()


async def from_url(keys_url: str, http: httpx.AsyncClient | None) -> AwsKmsProvider:
    """`awskms://<key-id-or-arn>?region=eu-west-1`: the `awskms` row of the key-provider table."""
    rest = keys_url.removeprefix("awskms://")
    key_id, _, query = rest.partition("?")
    options = url_options(query, {"region", "endpoint", "tombstone_file"}, "awskms")
    region = options.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region and key_id.startswith("arn:"):
        fields = key_id.split(":")
        region = fields[3] if len(fields) > 3 else ""
    if not key_id or not region:
        raise ConfigError("PRIVACY_KEYS awskms URL must look like awskms://<key-id-or-arn>?region=eu-west-1")
    endpoint = options.get("endpoint")
    if endpoint is not None and not (endpoint.startswith("https://") or is_loopback(urlsplit(endpoint).hostname or "")):
        raise ConfigError("PRIVACY_KEYS awskms endpoint must use https://")
    if not os.environ.get("AWS_ACCESS_KEY_ID") or not os.environ.get("AWS_SECRET_ACCESS_KEY"):
        raise ConfigError("PRIVACY_KEYS awskms needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
    if http is None:
        raise ConfigError("the awskms provider needs an HTTP client")
    return AwsKmsProvider(
        key_id=key_id,
        region=region,
        http=http,
        endpoint=endpoint,
        tombstone_file=options.get("tombstone_file"),
    )
