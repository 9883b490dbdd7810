"""IP addresses as personal data: parsing forwarded hops, and the coarse network that replaces an
address wherever the device itself must not be identifiable (IPv4 /24, IPv6 /48)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8192)
def parse_ip(text: str) -> IPAddress | None:
    """An IP from a header hop: `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:443`, `2001:db8::1`;
    IPv4-mapped IPv6 addresses come back as IPv4."""
    value = text.strip().strip('"')
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        value = value[1:end]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=8192)
def _network(address: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not address:
        return None
    parsed = parse_ip(address)
    if parsed is None:
        return None
    prefix = 24 if parsed.version == 4 else 48
    return ipaddress.ip_network(f"{parsed}/{prefix}", strict=False)


@lru_cache(maxsize=8192)
def canonical_ip(text: str) -> str | None:
    """`str(parse_ip(text))`, kept: the text form of an address costs more than parsing it."""
    address = parse_ip(text)
    return str(address) if address is not None else None


@lru_cache(maxsize=8192)  # the same few networks again and again; the text form is the costly part
def truncate_ip(address: str | None) -> str | None:
    """The network's first address (`198.51.100.0`): what a shop may store instead of the IP."""
    network = _network(address)
    return str(network.network_address) if network is not None else None


def network_hint(address: str | None) -> str | None:
    """The network in CIDR form (`198.51.100.0/24`): what records and access logs show."""
    network = _network(address)
    return str(network) if network is not None else None
