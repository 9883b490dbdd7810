"""Consent signals carried by a request: Sec-GPC, the consent cookie, the TCF TC string.

Sec-GPC (W3C GPC): honoured only when a header's value is exactly "1"; with several headers, one
exact "1" is enough; any other value is as if there were none. Nothing is parsed or trimmed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qs

from .cookie import COOKIE_NAME

TCF_COOKIE = "euconsent-v2"
TCF_QUERY = "gdpr_consent"


def gpc_enabled(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when at least one `Sec-GPC` header is exactly `1`."""
    return any(name.lower() == b"sec-gpc" and value == b"1" for name, value in headers)


def parse_cookie_header(value: str) -> dict[str, str]:
    """Cookie name -> value from a `Cookie` header; the first occurrence of a name wins.

    A hand-rolled split (as browsers send `a=b; c=d`) rather than SimpleCookie, which gives up on
    the whole header at the first odd cookie set by someone else.
    """
    cookies: dict[str, str] = {}
    for part in value.split(";"):
        name, eq, val = part.partition("=")
        name = name.strip()
        if not eq or not name:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        cookies.setdefault(name, val)
    return cookies


def cookie_values(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for name, value in headers:
        if name.lower() == b"cookie":
            for key, val in parse_cookie_header(value.decode("latin-1")).items():
                cookies.setdefault(key, val)
    return cookies


@dataclass(frozen=True, slots=True)
class RequestSignals:
    gpc: bool
    consent_cookie: str | None
    tc_string: str | None


# Cookie headers up to this size have their parse remembered (at most 2048 of them: <= 8 MB).
_REMEMBERED_HEADER_BYTES = 4096


def _from_cookie_header(header: bytes | None, cookie_name: str, gpc: bool) -> RequestSignals:
    cookies = parse_cookie_header(header.decode("latin-1")) if header else {}
    return RequestSignals(gpc, cookies.get(cookie_name), cookies.get(TCF_COOKIE) or None)


# A browser sends the same Cookie header again and again: its signals are remembered (the header's
# bytes are the key; nothing in it is trusted more for that, the cookie is still verified).
_remembered = lru_cache(maxsize=2048)(_from_cookie_header)


def request_signals(
    headers: Iterable[tuple[bytes, bytes]], query_string: bytes = b"", *, cookie_name: str = COOKIE_NAME
) -> RequestSignals:
    """Pull the three consent signals out of an ASGI request's headers and query string."""
    header_list = headers if isinstance(headers, list) else list(headers)
    cookie_header: bytes | None = None
    several = gpc = False
    for name, value in header_list:
        lowered = name.lower()
        if lowered == b"cookie":
            several = cookie_header is not None
            cookie_header = value
        elif lowered == b"sec-gpc" and value == b"1":
            gpc = True
    if several:  # several Cookie headers: the first occurrence of a name wins across them
        cookies = cookie_values(header_list)
        signals = RequestSignals(gpc, cookies.get(cookie_name), cookies.get(TCF_COOKIE) or None)
    elif cookie_header is None or len(cookie_header) <= _REMEMBERED_HEADER_BYTES:
        signals = _remembered(cookie_header, cookie_name, gpc)
    else:
        signals = _from_cookie_header(cookie_header, cookie_name, gpc)
    if query_string:
        values = parse_qs(query_string.decode("latin-1")).get(TCF_QUERY)
        if values and values[0]:
            signals = RequestSignals(signals.gpc, signals.consent_cookie, values[0])
    return signals
