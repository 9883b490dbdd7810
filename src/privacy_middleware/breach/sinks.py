"""Where findings (and witnessed checkpoints) are pushed: a signed webhook and e-mail over SMTP.

The webhook body is signed with HMAC-SHA256 over `<timestamp>.<body>` (header
`Privacy-Signature: t=<unix seconds>,v1=<hex>`), so a receiver can check origin, integrity and
freshness with the shared secret alone. Deliveries retry with backoff; a failure is logged by
class name only (never the URL's credentials or the payload).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib
import httpx
import orjson

from ..netguard import OutboundGuard
from ..outbound import connect_socket

logger = logging.getLogger("privacy_middleware.breach")

SIGNATURE_HEADER = "Privacy-Signature"
EVENT_HEADER = "Privacy-Event"
DELIVERY_HEADER = "Privacy-Delivery"


class Sink(Protocol):
    name: str

    async def deliver(self, kind: str, uid: str, payload: dict[str, Any]) -> bool: ...


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: bytes, body: bytes, header: str, *, tolerance: float = 300, now: float | None = None
) -> bool:
    """For receivers: the header is ours, for this body, and recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookSink:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: bytes,
        http: httpx.AsyncClient,
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the webhook secret must be at least 16 bytes")
        self.url = url
        self._secret = secret
        self._http = http
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff

    def __repr__(self) -> str:
        return "WebhookSink(...)"

    async def deliver(self, kind: str, uid: str, payload: dict[str, Any]) -> bool:
        body = orjson.dumps({"type": kind, "id": uid, **payload}, option=orjson.OPT_SORT_KEYS)
        for attempt in range(self.attempts):
            headers = {
                "content-type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
                EVENT_HEADER: kind,
                DELIVERY_HEADER: uid,
            }
            try:
                response = await self._http.post(self.url, content=body, headers=headers, timeout=self.timeout)
                if response.status_code < 300:
                    return True
                problem = f"status {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            logger.warning("breach webhook delivery %d/%d failed (%s)", attempt + 1, self.attempts, problem)
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.backoff * 2**attempt)
        return False


class EmailSink:
    """Plain-text mail to the security or privacy officer; names, counts and labels, never values."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        *,
        starttls: bool = False,
        tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        guard: OutboundGuard | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("an e-mail sink needs at least one recipient")
        self.host, self.port, self.sender, self.recipients = host, port, sender, recipients
        self.starttls = starttls
        self.tls = tls
        self._username, self._password = username, password
        self.timeout = timeout
        self.guard = guard or OutboundGuard(purpose="configured destination")

    def __repr__(self) -> str:
        return f"EmailSink({self.host}:{self.port})"

    async def deliver(self, kind: str, uid: str, payload: dict[str, Any]) -> bool:
        if kind != "finding":
            return True  # checkpoints are for witnesses, not inboxes
        finding = payload.get("finding", {})
        detail = finding.get("detail", {})
        severity = {5: "CRITICAL", 4: "HIGH", 3: "MEDIUM"}.get(finding.get("severity_id"), "LOW")
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Subject"] = f"[privacy] {severity} finding: {detail.get('finding', kind)}"
        message["Message-ID"] = f"<{uid}@privacy-middleware>"
        lines = [
            f"{detail.get('title', 'Finding')}",
            "",
            f"Finding id: {uid}",
            f"Time: {finding.get('time')}",
            f"Severity: {severity}",
        ]
        for key, value in sorted((detail.get("related") or {}).items()):
            lines.append(f"{key}: {value}")
        lines += ["", "Run `privacy-middleware incident report --finding " + uid + "` for the affected subjects."]
        message.set_content("\n".join(lines) + "\n")
        try:
            sock = await connect_socket(self.guard, self.host, self.port, self.timeout)
            await aiosmtplib.send(
                message,
                hostname=self.host,
                sock=sock,
                start_tls=self.starttls,
                use_tls=self.tls,
                username=self._username,
                password=self._password,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            logger.warning("breach e-mail delivery failed (%s)", type(exc).__name__)
            return False
        return True
