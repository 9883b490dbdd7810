"""AWS Signature Version 4 for the KMS JSON API, with hmac/hashlib only.

Follows the published algorithm: canonical request -> string to sign -> HMAC chain
(date, region, service, "aws4_request") -> signature; checked against AWS's examples in tests.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, quote

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(access_key={self.access_key[:4]}..., secret_key=<hidden>)"


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query: str) -> str:
    pairs = [(_encode(k), _encode(v)) for k, v in parse_qsl(query, keep_blank_values=True)]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_path(path: str) -> str:
    """Each segment URI-encoded twice, as AWS services other than S3 expect."""
    if not path:
        return "/"
    return "/".join(_encode(_encode(segment)) for segment in path.split("/"))


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    normalised = {name.lower().strip(): " ".join(value.strip().split()) for name, value in headers.items()}
    names = sorted(normalised)
    return "".join(f"{n}:{normalised[n]}\n" for n in names), ";".join(names)


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str], payload: bytes) -> str:
    canonical, signed = _canonical_headers(headers)
    return "\n".join(
        [
            method.upper(),
            canonical_path(path),
            canonical_query(query),
            canonical,
            signed,
            hashlib.sha256(payload).hexdigest(),
        ]
    )


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(
    *,
    credentials: Credentials,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload: bytes,
    region: str,
    service: str,
    amz_date: str,
) -> str:
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    request_hash = hashlib.sha256(canonical_request(method, path, query, headers, payload).encode()).hexdigest()
    to_sign = "\n".join([ALGORITHM, amz_date, scope, request_hash])
    key = signing_key(credentials.secret_key, date, region, service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def sign(
    *,
    credentials: Credentials,
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload: bytes,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """The headers to send: the given ones plus host, X-Amz-Date, token and Authorization."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    signed_headers = {**headers, "Host": host, "X-Amz-Date": amz_date}
    if credentials.session_token:
        signed_headers["X-Amz-Security-Token"] = credentials.session_token
    sig = signature(
        credentials=credentials,
        method=method,
        path=path,
        query=query,
        headers=signed_headers,
        payload=payload,
        region=region,
        service=service,
        amz_date=amz_date,
    )
    names = ";".join(sorted(name.lower() for name in signed_headers))
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    signed_headers["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={names}, Signature={sig}"
    )
    return signed_headers
