"""Which addresses the middleware may connect to: the check behind every outbound call.

A destination that comes from configuration or from a user (a portability target, a webhook, a
who-am-I endpoint) must not turn the middleware into a way to reach the machine it runs on or the
network behind it. So a host is resolved once, every address it resolves to must be globally
routable (or inside a network the operator allowed), and the caller connects to one of exactly those
addresses (see `outbound.py`). Python's `ipaddress` flags differ between versions and miss some
blocks, so the IANA special-purpose registries are spelled out here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IANA IPv4 Special-Purpose Address Registry, every entry (also the few marked globally reachable:
# no transfer target or webhook lives on an AS112 or anycast relay block), plus multicast.
SPECIAL_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # this network
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link local (cloud metadata services)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.31.196.0/24",  # AS112
        "192.52.193.0/24",  # AMT
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "192.175.48.0/24",  # AS112 direct delegation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",  # limited broadcast
    )
)

# IANA IPv6 Special-Purpose Address Registry, plus multicast, deprecated site-local and everything
# outside 2000::/3 (the only block allocated for global unicast). Blocks that embed an IPv4
# address (mapped, NAT64, 6to4, Teredo) are decided by the embedded address (see `refusal`).
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
SPECIAL_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation
        "100::/64",  # discard only
        "100:0:0:1::/64",  # dummy prefix
        "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID, AMT, AS112, ...)
        "2001:db8::/32",  # documentation
        "2620:4f:8000::/48",  # AS112
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link local
        "fec0::/10",  # deprecated site local
        "ff00::/8",  # multicast
    )
)
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
TEREDO = ipaddress.IPv6Network("2001::/32")

_NUMERIC_PART = r"(?:0[xX][0-9a-fA-F]*|[0-9]+)"
_LOOSE_V4 = re.compile(rf"^{_NUMERIC_PART}(?:\.{_NUMERIC_PART}){{0,3}}\.?$")
_ALL_NUMERIC_LABELS = re.compile(r"^[0-9a-fA-FxX.]+$")


class TargetRefused(Exception):
    """The destination is not one the middleware may connect to. The message names the kind of
    address only: never the host or the address (they may be a user's input)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"outbound target refused: {reason}")
        self.reason = reason


def loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a C resolver reads from `host` (inet_aton rules: `127.1`, `2130706433`,
    `0x7f000001`, `0177.0.0.1`), or None when `host` is not numeric. A numeric spelling that
    inet_aton would reject is refused rather than guessed."""
    if not _LOOSE_V4.match(host):
        if _ALL_NUMERIC_LABELS.match(host) and host.rstrip(".").split(".")[-1].isdigit():
            raise TargetRefused("an IPv4 address in a spelling that cannot be read unambiguously")
        return None
    parts = host.rstrip(".").split(".")
    values: list[int] = []
    for part in parts:
        if part[:2].lower() == "0x":
            value = int(part[2:] or "0", 16)
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                raise TargetRefused("an IPv4 address in a spelling that cannot be read unambiguously")
            value = int(part, 8)
        else:
            value = int(part)
        values.append(value)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise TargetRefused("an IPv4 address in a spelling that cannot be read unambiguously")
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def literal_address(host: str) -> IPAddress | None:
    """`host` as an IP address when it is one in any spelling (IPv6 with brackets or a zone id,
    IPv4 in dotted, shorthand, decimal, octal or hex form); None for a host name."""
    value = host.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    if ":" in value:
        try:
            return ipaddress.IPv6Address(value.split("%", 1)[0])
        except ValueError:
            raise TargetRefused("a malformed IPv6 address") from None
    return loose_ipv4(value)


def _v4_refusal(address: ipaddress.IPv4Address) -> str | None:
    for network in SPECIAL_V4:
        if address in network:
            return _v4_kind(address)
    if not address.is_global or address.is_multicast:
        return "a special-purpose IPv4 address"
    return None


def _v4_kind(address: ipaddress.IPv4Address) -> str:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in ipaddress.IPv4Network("0.0.0.0/8") or address == ipaddress.IPv4Address("255.255.255.255"):
        return "an unspecified or broadcast address"
    if address in ipaddress.IPv4Network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT) address"
    return "a private or special-purpose IPv4 address"


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not globally routable, or None when it is."""
    if isinstance(address, ipaddress.IPv4Address):
        return _v4_refusal(address)
    if address.scope_id:
        return "a scoped IPv6 address"
    embedded = _embedded_v4(address)
    if embedded is not None:
        inner = _v4_refusal(embedded)
        if inner is not None:
            return f"{inner} inside an IPv6 address"
        if address in TEREDO:
            return "a Teredo address"
        return None
    if address in V4_COMPATIBLE:
        return "an IPv4-compatible IPv6 address"
    if address not in GLOBAL_UNICAST_V6:
        return "a reserved or special-purpose IPv6 address"
    for network in SPECIAL_V6:
        if address in network:
            return "a special-purpose IPv6 address"
    if not address.is_global:
        return "a special-purpose IPv6 address"
    return None


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The operator's allow-list (`10.0.5.0/24`, `127.0.0.1`, `fd00::/8`); a bad entry raises
    ValueError naming it."""
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
    return tuple(networks)


@dataclass(frozen=True)
class OutboundGuard:
    """Resolves a destination and decides it: global addresses pass, anything else only inside
    one of `allow` (networks the operator named for internal services)."""

    allow: tuple[IPNetwork, ...] = ()
    purpose: str = "outbound"

    def check(self, address: IPAddress) -> IPAddress:
        reason = refusal(address)
        if reason is not None and not any(
            address.version == network.version and address in network for network in self.allow
        ):
            raise TargetRefused(reason)
        return address

    async def resolve(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """Every address of `host`, each checked; refused when any one is not allowed (a name
        that also resolves to an internal address is refused as a whole)."""
        if not host:
            raise TargetRefused("no host")
        literal = literal_address(host)
        if literal is not None:
            return (self.check(literal),)
        name = host.rstrip(".").lower()
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise TargetRefused("a host name that does not resolve") from None
        addresses: list[IPAddress] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(self.check(address))
        if not addresses:
            raise TargetRefused("a host name that does not resolve")
        return tuple(addresses)
