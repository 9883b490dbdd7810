"""The one error type and the one error body (RFC 9457 problem+json).

Messages are written for the caller and must never carry a secret or a personal value:
say which field or rule failed, never what it contained.
"""

from __future__ import annotations

from typing import Any

import orjson

PROBLEM_CONTENT_TYPE = b"application/problem+json"


class PrivacyError(Exception):
    """A refusal with a stable machine-readable `code` and an HTTP status."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}
        self.extra = extra or {}

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://privacy-middleware.dev/problems/{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "code": self.code,
            "detail": self.message,
        }
        body.update(self.extra)
        return body

    def __repr__(self) -> str:
        return f"PrivacyError({self.code!r}, status={self.status})"


class ConfigError(Exception):
    """Start-up configuration is wrong; the app must not start. The message is safe to print."""


class StoreUnreachable(PrivacyError, ConfigError):
    """The privacy store cannot be reached now: 503 `store_unavailable` on the routes that need it.

    At start-up it is a warning, not a refusal to start: a server that restarts one worker during a
    store outage (uvicorn stops all its workers when one fails to start) keeps the routes that need
    no store working, and the routes that do retry the start. A CLI command still stops on it
    (`str()` is the operator's diagnosis; the caller's problem body stays generic).
    """

    def __init__(self, diagnosis: str) -> None:
        super().__init__(
            "store_unavailable", "The privacy store is unreachable; try again later.", 503, headers={"Retry-After": "5"}
        )
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        return self.diagnosis


def problem_body(error: PrivacyError) -> bytes:
    return orjson.dumps(error.problem())


def problem_headers(error: PrivacyError, body: bytes) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items())
    return headers
