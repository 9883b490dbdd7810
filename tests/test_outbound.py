"""The outbound guard over real sockets: refused spellings never connect, allowed ones reach the
very address that was checked (no second lookup), redirects are never followed to unchecked places.

Servers are plain asyncio listeners on loopback addresses that record what reaches them; only the
name lookup of names the test owns is answered by `fake_dns` (support/dns.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privacy_middleware.netguard import OutboundGuard, TargetRefused, parse_networks, refusal
from privacy_middleware.outbound import OutboundRefused, SocketRefused, connect_socket, guarded_client
from support.dns import FakeDNS

pytestmark = pytest.mark.anyio


@dataclass
class Recorder:
    """A one-request-per-connection HTTP/1.1 server that records each request's Host header."""

    host: str
    port: int = 0
    seen: list[str] = field(default_factory=list)
    location: str | None = None  # answer 302 to this place instead of 200

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:  # a bare TCP connection (the SMTP socket test)
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        host = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("host:")), "")
        self.seen.append(host)
        if self.location:
            answer = f"HTTP/1.1 302 Found\r\nlocation: {self.location}\r\n"
            answer += "content-length: 0\r\nconnection: close\r\n\r\n"
        else:
            answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        writer.write(answer.encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Recorder, Recorder]]:
    """Two recorders on the same port: 127.0.0.1 (the address tests allow) and 127.0.0.2 (not)."""
    first = Recorder("127.0.0.1")
    server_a = await asyncio.start_server(first.handle, "127.0.0.1", 0)
    first.port = server_a.sockets[0].getsockname()[1]
    second = Recorder("127.0.0.2", first.port)
    server_b = await asyncio.start_server(second.handle, "127.0.0.2", first.port)
    async with server_a, server_b:
        yield first, second


LOOPBACK_ONLY = OutboundGuard(parse_networks(["127.0.0.1/32"]), purpose="test")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0x7f.1",
        "0177.0.0.1",
        "0177.0.0.01",
        "127.0.0.1.",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::1]",
        "localhost",
    ],
)
async def test_every_spelling_of_loopback_is_refused_before_connecting(
    servers: tuple[Recorder, Recorder], host: str, caplog: pytest.LogCaptureFixture
) -> None:
    listening, _ = servers
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TargetRefused):  # the guard itself, whatever the URL parser makes of it
        await OutboundGuard().resolve(host.strip("[]"), listening.port)
    async with guarded_client(OutboundGuard()) as client:
        # httpx refuses some spellings itself (`0177.0.0.1` looks dotted-decimal to it).
        with pytest.raises((OutboundRefused, httpx.InvalidURL)) as refused:
            await client.get(f"http://{host}:{listening.port}/hook?token=secret-value")
    assert listening.seen == []
    if isinstance(refused.value, OutboundRefused):
        assert isinstance(refused.value, httpx.ConnectError)  # every caller's "unreachable" path applies
    for text in (str(refused.value) if isinstance(refused.value, OutboundRefused) else "", caplog.text):
        assert "127.0.0.1" not in text and "secret-value" not in text and host.strip("[]") not in text


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "192.0.0.8",
        "192.0.0.170",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.7",
        "203.0.113.9",
        "192.88.99.1",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2002:c0a8:0101::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:db8::1",
        "3fff::1",
        "100::1",
        "5f00::1",
        "4000::1",
    ],
)
def test_special_purpose_addresses_are_not_public(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("host", ["1.2.3.4.5", "08.0.0.1", "0x1.0x100.1.1", "256.1.1.1", "[::1"])
async def test_numeric_spellings_that_cannot_be_read_unambiguously_are_refused(host: str) -> None:
    with pytest.raises(TargetRefused):
        await OutboundGuard().resolve(host, 443)


async def test_a_name_with_any_private_answer_is_refused(servers: tuple[Recorder, Recorder], fake_dns: FakeDNS) -> None:
    listening, _ = servers
    fake_dns.answer("mixed.test", ["93.184.215.14", "127.0.0.1"])
    async with guarded_client(OutboundGuard()) as client:
        with pytest.raises(OutboundRefused, match="a loopback address"):
            await client.get(f"http://mixed.test:{listening.port}/")
    assert listening.seen == []


async def test_an_allowed_network_is_reached_by_name_with_the_name_as_host(
    servers: tuple[Recorder, Recorder], fake_dns: FakeDNS
) -> None:
    allowed, other = servers
    fake_dns.answer("whoami.test", ["127.0.0.1"])
    async with guarded_client(LOOPBACK_ONLY) as client:
        response = await client.get(f"http://whoami.test:{allowed.port}/me")
    assert response.status_code == 200
    assert allowed.seen == [f"whoami.test:{allowed.port}"] and other.seen == []
    # The allow-list is exact: a neighbouring loopback address stays refused.
    async with guarded_client(LOOPBACK_ONLY) as client:
        with pytest.raises(OutboundRefused):
            await client.get(f"http://127.0.0.2:{allowed.port}/me")
    assert other.seen == []


async def test_rebinding_connects_to_the_checked_address(servers: tuple[Recorder, Recorder], fake_dns: FakeDNS) -> None:
    """The name answers the allowed address to the check and another one to any later lookup: the
    connection still goes to the checked address, because nothing looks the name up again."""
    checked, rebound = servers
    fake_dns.answer("rebind.test", ["127.0.0.1"], ["127.0.0.2"])
    async with guarded_client(LOOPBACK_ONLY) as client:
        response = await client.get(f"http://rebind.test:{checked.port}/")
        assert response.status_code == 200
        assert checked.seen == [f"rebind.test:{checked.port}"] and rebound.seen == []
        assert fake_dns.lookups == ["rebind.test"]
        # The next request looks the name up again, sees the other address, and is refused.
        with pytest.raises(OutboundRefused):
            await client.get(f"http://rebind.test:{checked.port}/")
    assert rebound.seen == [] and len(checked.seen) == 1


async def test_redirects_are_not_followed_and_rechecked_when_asked_for(
    servers: tuple[Recorder, Recorder], fake_dns: FakeDNS
) -> None:
    allowed, internal = servers
    allowed.location = f"http://127.0.0.2:{allowed.port}/admin"
    async with guarded_client(LOOPBACK_ONLY) as client:
        response = await client.get(f"http://127.0.0.1:{allowed.port}/")
        assert response.status_code == 302  # handed back, not followed
        with pytest.raises(OutboundRefused):
            await client.get(f"http://127.0.0.1:{allowed.port}/", follow_redirects=True)
    assert len(allowed.seen) == 2 and internal.seen == []


async def test_refusals_reach_the_audit_hook_without_the_address() -> None:
    seen: list[OutboundRefused] = []
    async with guarded_client(OutboundGuard(purpose="breach webhook"), on_refused=seen.append) as client:
        with pytest.raises(OutboundRefused):
            await client.post("https://169.254.169.254/latest/meta-data")
    [refused] = seen
    assert refused.purpose == "breach webhook" and refused.reason == "a link-local address"
    assert "169.254" not in str(refused)


async def test_sockets_for_smtp_go_only_to_checked_addresses(servers: tuple[Recorder, Recorder]) -> None:
    listening, _ = servers
    with pytest.raises(SocketRefused):
        await connect_socket(OutboundGuard(), "localhost", listening.port, 5)
    sock = await connect_socket(LOOPBACK_ONLY, "127.0.0.1", listening.port, 5)
    try:
        assert sock.getpeername() == ("127.0.0.1", listening.port)
    finally:
        sock.close()


def _certificates(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throw-away CA and a server certificate for `name`: (server context, client context)."""
    now = dt.datetime.now(dt.UTC)

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("test CA", ca_key, "test CA", ca_key, True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = issue(name, server_key, "test CA", ca_key, False)
    chain = tmp_path / "server.pem"
    chain.write_bytes(
        server.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(chain)
    client_context = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server_context, client_context


async def test_tls_is_verified_against_the_name_while_connecting_to_the_checked_address(
    tmp_path: Path, fake_dns: FakeDNS
) -> None:
    server_context, client_context = _certificates(tmp_path, "sink.test")
    recorder = Recorder("127.0.0.1")
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment,misc]
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    fake_dns.answer("sink.test", ["127.0.0.1"])
    fake_dns.answer("other.test", ["127.0.0.1"])
    async with server, guarded_client(LOOPBACK_ONLY, verify=client_context) as client:
        response = await client.get(f"https://sink.test:{port}/")
        assert response.status_code == 200 and recorder.seen == [f"sink.test:{port}"] and names == ["sink.test"]
        # The same address under a name the certificate does not cover fails verification.
        with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            await client.get(f"https://other.test:{port}/")
    assert len(recorder.seen) == 1
