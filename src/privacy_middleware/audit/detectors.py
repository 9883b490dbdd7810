"""Suspicious logins: layered lockout counters and new device / network signals.

Defaults come from research/audit.md §d: R1 10 failures per account+IP block the pair (Auth0,
lifted 30 days after the last failure or by a success before the threshold); R2 30 failures per
account give a temporary wait growing 60 s per failure up to 15 min, reset after 12 h quiet
(Keycloak, never permanent); R4 more than 100 failures per IP in a day throttle it (Auth0);
R5 more than 10 distinct usernames failing from one source in 30 min is password spraying
(Google SecOps). R7/R8: a device or network not among the last 20 sign-ins is reported
(Okta), never blocked. Counter keys are keyed BLAKE2b pseudonyms of account and IP.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx

from .counters import CounterBackend
from .events import AuditEvent, detection_finding, format_time, network_hint

logger = logging.getLogger("privacy_middleware.audit")


class EventSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class LoginLimits:
    pair_failures: int = 10
    pair_block_seconds: float = 30 * 86_400
    account_failures: int = 30
    account_wait_increment: float = 60
    account_max_wait: float = 900
    account_reset_seconds: float = 12 * 3600
    ip_failures: int = 100
    ip_window_seconds: float = 86_400
    spray_accounts: int = 10
    spray_window_seconds: float = 1800
    history_size: int = 20
    history_seconds: float = 30 * 86_400
    reset_on_success: bool = True

    def __post_init__(self) -> None:
        for name in ("pair_failures", "account_failures", "ip_failures", "spray_accounts", "history_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"LoginLimits.{name} must be at least 1")


@dataclass(frozen=True, slots=True)
class Lockout:
    """Refuse the attempt with 429 and `Retry-After: retry_after` (one generic message for all)."""

    reason: str  # account_ip | account | ip | password_spraying
    retry_after: int


@dataclass(frozen=True, slots=True)
class LoginSignals:
    new_device: bool
    new_network: bool

    @property
    def suspicious(self) -> bool:
        return self.new_device or self.new_network


def _normal_ip(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return ip.strip()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class LoginGuard:
    """Evaluates several counter keys at once; `check` before the login, `record_*` after it."""

    def __init__(
        self,
        counters: CounterBackend,
        *,
        key: bytes,
        limits: LoginLimits | None = None,
        sink: EventSink | None = None,
        webhook_url: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the login guard key must be at least 16 bytes")
        if webhook_url is not None and http is None:
            raise ValueError("a webhook needs an httpx.AsyncClient")
        self._counters = counters
        self._key = key
        self.limits = limits or LoginLimits()
        self._sink = sink
        self._webhook_url = webhook_url
        self._http = http

    def __repr__(self) -> str:
        return f"LoginGuard(limits={self.limits!r})"

    def _p(self, kind: str, *parts: str) -> str:
        digest = hashlib.blake2b(digest_size=16, key=self._key[:64], person=b"privacy-login")
        digest.update(kind.encode() + b"\x00" + b"\x00".join(p.encode() for p in parts))
        return f"{kind}:{digest.hexdigest()}"

    def _keys(self, account: str, ip: str) -> dict[str, str]:
        acct = account.strip().casefold()
        addr = _normal_ip(ip)
        keys = {"ip": self._p("ip", addr), "spray": self._p("spray", addr)}
        if acct:
            keys.update(
                pair=self._p("pair", acct, addr),
                account=self._p("acct", acct),
                account_lock=self._p("acct-lock", acct),
                member=self._p("member", acct),
                history=self._p("hist", acct),
            )
        return keys

    async def check(self, account: str, ip: str) -> Lockout | None:
        """The lockout in force for this attempt, if any (the longest wait wins)."""
        keys = self._keys(account, ip)
        limits = self.limits
        found: list[Lockout] = []
        if "pair" in keys:
            count, ttl = await self._counters.count(keys["pair"])
            if count >= limits.pair_failures:
                found.append(Lockout("account_ip", math.ceil(ttl)))
            locked, ttl = await self._counters.count(keys["account_lock"])
            if locked:
                found.append(Lockout("account", math.ceil(ttl)))
        count, ttl = await self._counters.count(keys["ip"])
        if count > limits.ip_failures:
            found.append(Lockout("ip", math.ceil(ttl)))
        count, ttl = await self._counters.distinct(keys["spray"])
        if count > limits.spray_accounts:
            found.append(Lockout("password_spraying", math.ceil(ttl)))
        return max(found, key=lambda lock: lock.retry_after) if found else None

    async def record_failure(self, account: str, ip: str, *, subject: str | None = None) -> Lockout | None:
        """Count a failed login; emits a Detection Finding the moment a lockout starts."""
        keys = self._keys(account, ip)
        limits = self.limits
        counters = self._counters
        if "pair" in keys:
            pair = await counters.incr(keys["pair"], limits.pair_block_seconds, refresh=True)
            if pair == limits.pair_failures:
                self._finding("lockout", "account locked for this network", subject, ip, account, key="account_ip")
            failures = await counters.incr(keys["account"], limits.account_reset_seconds, refresh=True)
            if failures >= limits.account_failures:
                steps = failures - limits.account_failures + 1
                wait = min(limits.account_max_wait, limits.account_wait_increment * steps)
                await counters.lock(keys["account_lock"], wait)
                if failures == limits.account_failures:
                    self._finding("lockout", "account temporarily locked", subject, ip, account, key="account")
            spray = await counters.add_distinct(keys["spray"], keys["member"], limits.spray_window_seconds)
            if spray == limits.spray_accounts + 1:
                self._finding("password_spraying", "many accounts failing from one source", None, ip, None, key="ip")
        per_ip = await counters.incr(keys["ip"], limits.ip_window_seconds, refresh=False)
        if per_ip == limits.ip_failures + 1:
            self._finding("lockout", "network throttled after many failures", None, ip, None, key="ip")
        return await self.check(account, ip)

    async def record_success(
        self, account: str, ip: str, device: str | None = None, *, subject: str | None = None
    ) -> LoginSignals:
        """Reset the failure counters and report a device or network new to this account."""
        keys = self._keys(account, ip)
        if "pair" not in keys:
            return LoginSignals(False, False)
        limits = self.limits
        if limits.reset_on_success:
            await self._counters.delete(keys["pair"], keys["account"], keys["account_lock"])
        new_device = new_network = False
        if device:
            seen, before = await self._counters.remember(
                keys["history"], "d:" + self._p("dev", device), limits.history_size, limits.history_seconds
            )
            new_device = not seen and before > 0
        hint = network_hint(ip)
        if hint:
            seen, before = await self._counters.remember(
                keys["history"] + ":net",
                "n:" + self._p("net", hint),
                limits.history_size,
                limits.history_seconds,
            )
            new_network = not seen and before > 0
        signals = LoginSignals(new_device=new_device, new_network=new_network)
        if signals.suspicious:
            names = [n for n, on in (("new_device", new_device), ("new_network", new_network)) if on]
            self._finding(
                "suspicious_login",
                "sign-in from a new device or network",
                subject,
                ip,
                account,
                signals=names,
            )
            await self._notify(subject, hint, names)
        return signals

    async def reset(self, account: str, ip: str | None = None) -> None:
        """An officer lifts an account's lockout (and, given the network it came from, the pair lock)."""
        keys = self._keys(account, ip or "")
        if "pair" not in keys:
            return
        await self._counters.delete(keys["account"], keys["account_lock"], *([keys["pair"]] if ip else []))

    def _finding(
        self,
        finding: str,
        title: str,
        subject: str | None,
        ip: str,
        account: str | None,
        **related: object,
    ) -> None:
        if self._sink is None:
            return
        try:
            event = detection_finding(
                finding,
                title=title,
                subject=subject,
                related=dict(related),
                ip=ip or None,
                username=account or None,
            )
        except ValueError:
            logger.warning("login finding could not be built")
            return
        self._sink.emit(event)

    async def _notify(self, subject: str | None, network: str | None, signals: list[str]) -> None:
        if self._webhook_url is None or self._http is None:
            return
        payload = {
            "type": "login.suspicious",
            "signals": signals,
            "subject": subject,
            "network": network,
            "time": format_time(datetime.now(UTC)),
        }
        try:
            response = await self._http.post(self._webhook_url, json=payload)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning("suspicious-login webhook failed (%s)", exc.__class__.__name__)
