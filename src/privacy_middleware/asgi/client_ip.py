"""The client's IP address, trusting forwarding headers only from configured proxies.

The walk goes right to left through `Forwarded` (RFC 7239) or `X-Forwarded-For`: every hop added by a
trusted proxy is skipped, and the first address that is not a trusted proxy is the client. A peer
that is not trusted cannot speak for anyone: its headers are ignored (no spoofing).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from ..netaddr import IPAddress, canonical_ip, parse_ip, truncate_ip
from .headers import get_all

_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]+)', re.IGNORECASE)


def _forwarded_hops(values: list[bytes]) -> list[str]:
    hops: list[str] = []
    for value in values:
        for element in value.decode("latin-1").split(","):
            match = _FOR.search(element)
            hops.append(match.group(1) if match else "")
    return hops


def _xff_hops(values: list[bytes]) -> list[str]:
    return [hop.strip() for value in values for hop in value.decode("latin-1").split(",")]


class ClientIPResolver:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies]

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def resolve(self, scope: Any) -> str | None:
        client = scope.get("client")
        if not self.networks:  # no trusted proxy: the peer is the client
            return canonical_ip(client[0]) if client else None
        peer = parse_ip(client[0]) if client else None
        if peer is None:
            return None
        if not self.is_trusted(peer):
            return str(peer)
        headers = scope.get("headers") or []
        forwarded = get_all(headers, b"forwarded")
        hops = _forwarded_hops(forwarded) if forwarded else _xff_hops(get_all(headers, b"x-forwarded-for"))
        nearest = peer
        for hop in reversed(hops):
            address = parse_ip(hop)
            if address is None:
                # An obfuscated or malformed hop: nothing left of it can be trusted.
                return str(nearest)
            if not self.is_trusted(address):
                return str(address)
            nearest = address
        return str(nearest)


__all__ = ["ClientIPResolver", "IPAddress", "parse_ip", "truncate_ip"]
