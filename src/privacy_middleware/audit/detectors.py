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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import httpx

from .attempts import AttemptKeys, AttemptLedger, MemoryLedger, Outcome, Reservation
from .attempts import Lockout as Lockout
from .attempts import LoginLimits as LoginLimits
from .counters import CounterBackend, MemoryCounters, RedisCounters
from .events import AuditEvent, detection_finding, format_time, network_hint
from .usernames import normalise_username

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..store.database import Database

logger = logging.getLogger("privacy_middleware.audit")


class EventSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...


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


def ledger_for(counters: CounterBackend) -> AttemptLedger:
    """The attempt ledger that lives where these counters live."""
    if isinstance(counters, RedisCounters):
        from .attempts_redis import RedisLedger

        return RedisLedger(counters.client, prefix=counters.prefix)
    if isinstance(counters, MemoryCounters):
        return MemoryLedger(counters.clock)
    raise TypeError(f"no attempt ledger for {type(counters).__name__}: pass ledger=")


def shared_login_ledger(database: Database, counters: CounterBackend, registry: CollectorRegistry) -> AttemptLedger:
    """The ledger every instance shares: Redis when configured, else the store; this instance's
    memory while that one is unreachable."""
    from .attempts_fallback import FallbackLedger
    from .attempts_sql import SqlLedger

    if isinstance(counters, RedisCounters):
        return FallbackLedger(ledger_for(counters), name="redis", registry=registry)
    return FallbackLedger(SqlLedger(database), name="store", registry=registry)


class LoginGuard:
    """Several counter keys decided at once: `reserve` before the shop sees a login, `finish` after.

    `check`, `record_failure` and `record_success` are the same ledger seen one step at a time.
    """

    def __init__(
        self,
        counters: CounterBackend,
        *,
        key: bytes,
        ledger: AttemptLedger | None = None,
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
        self.ledger = ledger or ledger_for(counters)
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

    def _keys(self, account: str, ip: str) -> AttemptKeys:
        acct = normalise_username(account)
        addr = _normal_ip(ip)
        if not acct:
            return AttemptKeys(ip=self._p("ip", addr), spray=self._p("spray", addr))
        return AttemptKeys(
            ip=self._p("ip", addr),
            spray=self._p("spray", addr),
            pair=self._p("pair", acct, addr),
            account=self._p("acct", acct),
            lock=self._p("acct-lock", acct),
            member=self._p("member", acct),
        )

    def _history_key(self, account: str) -> str:
        return self._p("hist", normalise_username(account))

    async def check(self, account: str, ip: str) -> Lockout | None:
        """The lockout in force for this attempt, if any (the longest wait wins)."""
        return await self.ledger.peek(self._keys(account, ip), self.limits)

    async def reserve(self, account: str, ip: str) -> Reservation:
        """Before the shop sees the attempt: refused (`granted` False, with the lockout) or counted.

        Atomic in the ledger, so concurrent attempts on any number of instances never exceed a limit.
        A granted reservation must be passed to `finish` once.
        """
        return await self.ledger.reserve(self._keys(account, ip), self.limits)

    async def finish(
        self,
        reservation: Reservation,
        account: str,
        ip: str,
        outcome: Outcome,
        *,
        device: str | None = None,
        subject: str | None = None,
    ) -> LoginSignals | None:
        """Settle a granted attempt: failure (stays counted), success (resets), void (given back)."""
        if not reservation.granted:
            return None
        keys = self._keys(account, ip)
        await self.ledger.settle(keys, reservation, outcome, self.limits)
        if outcome == "failure":
            self._failure_findings(reservation, account, ip, subject)
            return None
        if outcome == "success":
            return await self._signals(account, ip, device, subject=subject)
        return None

    async def record_failure(self, account: str, ip: str, *, subject: str | None = None) -> Lockout | None:
        """Count a failed login even while locked (a shop that judged it without the middleware)."""
        reservation = await self.ledger.reserve(self._keys(account, ip), self.limits, force=True)
        self._failure_findings(reservation, account, ip, subject)
        return reservation.lockout

    def _failure_findings(self, reservation: Reservation, account: str, ip: str, subject: str | None) -> None:
        """A Detection Finding the moment a lockout starts."""
        limits = self.limits
        if reservation.pair == limits.pair_failures:
            self._finding("lockout", "account locked for this network", subject, ip, account, key="account_ip")
        if reservation.account == limits.account_failures:
            self._finding("lockout", "account temporarily locked", subject, ip, account, key="account")
        if reservation.new_member and reservation.spray == limits.spray_accounts + 1:
            self._finding("password_spraying", "many accounts failing from one source", None, ip, None, key="ip")
        if reservation.ip == limits.ip_failures + 1:
            self._finding("lockout", "network throttled after many failures", None, ip, None, key="ip")

    async def record_success(
        self, account: str, ip: str, device: str | None = None, *, subject: str | None = None
    ) -> LoginSignals:
        """Reset the failure counters and report a device or network new to this account."""
        await self.ledger.settle(self._keys(account, ip), None, "success", self.limits)
        return await self._signals(account, ip, device, subject=subject)

    async def _signals(self, account: str, ip: str, device: str | None, *, subject: str | None) -> LoginSignals:
        if not normalise_username(account):
            return LoginSignals(False, False)
        from .attempts_fallback import UNREACHABLE

        try:
            return await self._remember_signals(account, ip, device, subject=subject)
        except UNREACHABLE as exc:  # sign-in history is a hint, never a reason to fail a login
            logger.warning("sign-in history unavailable (%s): no new-device signal", type(exc).__name__)
            return LoginSignals(False, False)

    async def _remember_signals(
        self, account: str, ip: str, device: str | None, *, subject: str | None
    ) -> LoginSignals:
        limits = self.limits
        history = self._history_key(account)
        new_device = new_network = False
        if device:
            seen, before = await self._counters.remember(
                history, "d:" + self._p("dev", device), limits.history_size, limits.history_seconds
            )
            new_device = not seen and before > 0
        hint = network_hint(ip)
        if hint:
            seen, before = await self._counters.remember(
                history + ":net",
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
        if not keys.has_account:
            return
        # A success never reserved clears the account, its lock and (with the network) the pair.
        await self.ledger.settle(keys, None, "success", replace(self.limits, reset_on_success=True))

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
