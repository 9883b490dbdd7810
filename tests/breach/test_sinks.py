"""Finding sinks against real servers on loopback: the signed webhook and SMTP (aiosmtpd)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller

from privacy_middleware.audit.events import SEVERITY_CRITICAL, detection_finding
from privacy_middleware.breach.sinks import EmailSink, WebhookSink, sign, verify_signature
from privacy_middleware.netguard import OutboundGuard, parse_networks

from .conftest import WEBHOOK_SECRET, Receiver

pytestmark = pytest.mark.anyio


LOOPBACK = OutboundGuard(parse_networks(["127.0.0.1/32"]))


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def finding() -> Any:
    return detection_finding(
        "canary_accessed",
        title="A canary record was disclosed",
        severity_id=SEVERITY_CRITICAL,
        related={"principal": "staff-1", "recipient": "support", "route": "GET /orders", "network": "198.51.100.0/24"},
    )


async def test_email_sink_sends_the_finding_without_personal_values(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    # A self-hosted mail server on loopback: allowed by name, as PRIVACY_OUTBOUND__ALLOW would.
    sink = EmailSink(
        "127.0.0.1", port, "privacy@shop.example", ["dpo@shop.example", "soc@shop.example"], guard=LOOPBACK
    )
    event = finding()
    assert await sink.deliver("finding", event.uid, {"finding": event.document()})
    [(sender, recipients, message)] = inbox.messages
    assert sender == "privacy@shop.example"
    assert recipients == ["dpo@shop.example", "soc@shop.example"]
    assert message["Subject"] == "[privacy] CRITICAL finding: canary_accessed"
    body = message.get_payload(decode=True).decode()
    assert "principal: staff-1" in body and f"incident report --finding {event.uid}" in body


async def test_email_sink_refuses_an_internal_server_the_operator_did_not_allow(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    sink = EmailSink("localhost", port, "privacy@shop.example", ["dpo@shop.example"])
    event = finding()
    assert not await sink.deliver("finding", event.uid, {"finding": event.document()})
    assert inbox.messages == []


async def test_email_sink_reports_an_unreachable_server() -> None:
    sink = EmailSink("127.0.0.1", free_port(), "a@shop.example", ["b@shop.example"], timeout=2, guard=LOOPBACK)
    event = finding()
    assert not await sink.deliver("finding", event.uid, {"finding": event.document()})


async def test_webhook_is_signed_over_timestamp_and_body(receiver: Receiver) -> None:
    event = finding()
    async with httpx.AsyncClient() as http:
        sink = WebhookSink(receiver.url, WEBHOOK_SECRET.encode(), http)
        assert await sink.deliver("finding", event.uid, {"finding": event.document()})
    [(headers, body, _)] = await asyncio.to_thread(receiver.wait_for, lambda d: True, 5)
    assert headers["privacy-event"] == "finding" and headers["privacy-delivery"] == event.uid
    assert orjson.loads(body)["finding"]["uid"] == event.uid
    assert verify_signature(WEBHOOK_SECRET.encode(), body, headers["privacy-signature"])
    assert not verify_signature(WEBHOOK_SECRET.encode(), body + b" ", headers["privacy-signature"])
    old = sign(WEBHOOK_SECRET.encode(), body, 1_000_000_000)
    assert not verify_signature(WEBHOOK_SECRET.encode(), body, old)  # replayed long after


async def test_webhook_retries_then_gives_up(httpx_mock: Any) -> None:
    httpx_mock.add_response(url="https://hooks.example/privacy", status_code=500)
    httpx_mock.add_response(url="https://hooks.example/privacy", status_code=204)
    event = finding()
    async with httpx.AsyncClient() as http:
        sink = WebhookSink("https://hooks.example/privacy", WEBHOOK_SECRET.encode(), http, backoff=0.01)
        assert await sink.deliver("finding", event.uid, {"finding": event.document()})
    assert len(httpx_mock.get_requests()) == 2
