"""Client IP through trusted proxies only: spoofed headers from untrusted peers are ignored."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.asgi.client_ip import ClientIPResolver, truncate_ip


def scope(peer: str, **headers: str) -> dict[str, Any]:
    return {
        "client": (peer, 5000),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


PROXIES = ClientIPResolver(["10.0.0.0/8", "2001:db8:ffff::/48"])


def test_untrusted_peer_cannot_spoof_forwarded_for() -> None:
    assert PROXIES.resolve(scope("203.0.113.9", x_forwarded_for="1.1.1.1")) == "203.0.113.9"


def test_no_trusted_proxies_means_headers_are_ignored() -> None:
    assert ClientIPResolver([]).resolve(scope("10.0.0.1", x_forwarded_for="1.1.1.1")) == "10.0.0.1"


def test_rightmost_untrusted_hop_is_the_client() -> None:
    # The client forged "6.6.6.6"; our proxies appended the real address and themselves.
    s = scope("10.0.0.2", x_forwarded_for="6.6.6.6, 198.51.100.7, 10.0.0.1")
    assert PROXIES.resolve(s) == "198.51.100.7"


def test_rfc7239_forwarded_is_preferred_and_parsed() -> None:
    s = scope(
        "10.0.0.2",
        forwarded='for=6.6.6.6, for="[2001:db8::17]:4711";proto=https, for=10.0.0.1',
        x_forwarded_for="9.9.9.9",
    )
    assert PROXIES.resolve(s) == "2001:db8::17"


def test_obfuscated_hop_stops_the_walk() -> None:
    s = scope("10.0.0.2", forwarded="for=6.6.6.6, for=_hidden, for=10.0.0.1")
    assert PROXIES.resolve(s) == "10.0.0.1"


def test_all_hops_trusted_gives_leftmost() -> None:
    assert PROXIES.resolve(scope("10.0.0.2", x_forwarded_for="10.1.1.1, 10.0.0.1")) == "10.1.1.1"


def test_ipv4_mapped_peer_and_ports() -> None:
    assert PROXIES.resolve(scope("::ffff:10.0.0.2", x_forwarded_for="198.51.100.7:443")) == "198.51.100.7"


def test_missing_client_is_none() -> None:
    assert PROXIES.resolve({"headers": []}) is None


@pytest.mark.parametrize(("ip", "hint"), [("198.51.100.77", "198.51.100.0"), ("2001:db8:1:2::5", "2001:db8:1::")])
def test_truncation_gives_a_network_hint(ip: str, hint: str) -> None:
    assert truncate_ip(ip) == hint


@given(st.lists(st.text(alphabet='0123456789abcdef.:[]_ ,;="', max_size=30), max_size=6))
def test_arbitrary_header_garbage_never_crashes_and_never_yields_trusted_proxy_input(hops: list[str]) -> None:
    result = PROXIES.resolve(scope("203.0.113.1", x_forwarded_for=",".join(hops)))
    assert result == "203.0.113.1"
    result = PROXIES.resolve(scope("10.0.0.1", x_forwarded_for=",".join(hops)))
    assert result is not None
