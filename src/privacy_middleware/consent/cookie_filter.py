"""Set-Cookie policy: tracking cookies of denied purposes are not set, and are expired on withdrawal.

Rules are the policy's `tracking.cookies` (glob pattern on the cookie name -> purpose). A cookie
that matches no rule is KEPT: it is the shop's own (session, cart, CSRF), which the shop needs to
work; listing a cookie in a rule is what makes it consent-gated. A cookie matching several rules
is kept only if every matched purpose is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from ..policy.schema import CookieRule
from .decisions import Decision
from .signals import parse_cookie_header

EXPIRED = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"


def set_cookie_name(header_value: str | bytes) -> str:
    text = header_value.decode("latin-1") if isinstance(header_value, bytes) else header_value
    return text.split(";", 1)[0].partition("=")[0].strip()


def cookie_purposes(name: str, rules: Sequence[CookieRule]) -> list[str]:
    return [rule.purpose for rule in rules if fnmatchcase(name, rule.pattern)]


def cookie_allowed(name: str, rules: Sequence[CookieRule], decision: Decision) -> bool:
    return all(decision.allowed(purpose) for purpose in cookie_purposes(name, rules))


def filter_set_cookies(
    values: Iterable[str | bytes], rules: Sequence[CookieRule], decision: Decision
) -> list[str | bytes]:
    """The `Set-Cookie` header values to keep, in their original order and type."""
    return [value for value in values if cookie_allowed(set_cookie_name(value), rules, decision)]


def expiring_set_cookies(
    cookie_header: str | None,
    rules: Sequence[CookieRule],
    decision: Decision,
    *,
    domains: Sequence[str] = (),
    path: str = "/",
) -> list[str]:
    """`Set-Cookie` values that delete the request's cookies whose purpose is now denied.

    A browser only deletes a cookie when name, path and domain match how it was set: one header is
    sent host-only and one per configured domain (e.g. `.shop.example` for analytics cookies).
    """
    if not cookie_header:
        return []
    out: list[str] = []
    for name in parse_cookie_header(cookie_header):
        purposes = cookie_purposes(name, rules)
        if not purposes or all(decision.allowed(p) for p in purposes):
            continue
        out.append(f"{name}=; {EXPIRED}; Path={path}")
        out.extend(f"{name}=; {EXPIRED}; Path={path}; Domain={domain}" for domain in domains)
    return out
