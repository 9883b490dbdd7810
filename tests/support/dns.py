"""A resolver for names the tests own, at the event loop's `getaddrinfo` (the DNS step only).

The outbound guard resolves every destination through the running loop; tests that name a host
under a reserved example domain (RFC 2606 / RFC 6761: `*.example`, `example.com`, `*.test`...)
get the answer they set here, or by default a public address, since such names never resolve for
real. Whatever is sent still goes through pytest-httpx or to a real loopback server: only the
name lookup is answered here, and every other name goes to the system resolver.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

PUBLIC_ADDRESS = "93.184.215.14"  # a globally routable address (no test ever connects to it)
RESERVED_SUFFIXES = (".example", ".test", ".invalid", "example.com", "example.org", "example.net")


class FakeDNS:
    """Answers for test names: `answer(name, [addresses], [addresses]...)` gives one list per
    lookup, the last one repeating (so a name can change its answer between lookups)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def answer(self, name: str, *answers: list[str]) -> None:
        self.answers[name.lower()] = [list(a) for a in answers]

    def lookup(self, host: str) -> list[str] | None:
        name = host.rstrip(".").lower()
        if name in self.answers:
            self.lookups.append(name)
            queue = self.answers[name]
            return queue.pop(0) if len(queue) > 1 else queue[0]
        if name.endswith(RESERVED_SUFFIXES):
            self.lookups.append(name)
            return [PUBLIC_ADDRESS]
        return None


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDNS]:
    dns = FakeDNS()
    original = asyncio.base_events.BaseEventLoop.getaddrinfo

    async def getaddrinfo(self: Any, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        found = dns.lookup(host.decode() if isinstance(host, bytes) else str(host)) if host else None
        if found is None:
            return await original(self, host, port, *args, **kwargs)
        infos = []
        for address in found:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port)))
        return infos

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "getaddrinfo", getaddrinfo)
    yield dns
