"""Login attempts reserved before the shop sees them: one atomic increment-and-decide per attempt.

Counting after the shop answers lets N concurrent guesses all pass; here an attempt is counted as a
failure the moment it is let through (attempts in flight count), and settled afterwards: a failure
keeps its count, a success resets the account's counters and gives back its IP slot, an attempt
the shop never judged (5xx, disconnect) is given back. The decision and the increment happen in
one step of one backend (a Redis Lua script, a SQL row lock, or one event-loop turn in memory), so
no interleaving of instances can let more attempts through than the limits allow.

Rules (research/audit.md §d): `pair` = account+IP failures (block at `pair_failures`), `account`
failures give a growing wait from `account_failures`, `ip` failures throttle above `ip_failures`,
more than `spray_accounts` distinct accounts failing from one source is password spraying.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

Outcome = Literal["failure", "success", "void"]


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
class AttemptKeys:
    """Pseudonymous counter keys of one attempt; the account keys are None without a username."""

    ip: str
    spray: str
    pair: str | None = None
    account: str | None = None
    lock: str | None = None
    member: str | None = None

    @property
    def has_account(self) -> bool:
        return self.pair is not None


@dataclass(slots=True)
class Reservation:
    """What `reserve` decided. `granted` attempts must be settled exactly once."""

    granted: bool
    lockout: Lockout | None = None
    pair: int = 0
    account: int = 0
    ip: int = 0
    spray: int = 0
    new_member: bool = False
    backend: str = "primary"  # which ledger holds it (a fallback settles on the one that reserved)


class AttemptLedger(Protocol):
    async def peek(self, keys: AttemptKeys, limits: LoginLimits) -> Lockout | None:
        """The lockout in force, without counting anything."""
        ...

    async def reserve(self, keys: AttemptKeys, limits: LoginLimits, *, force: bool = False) -> Reservation:
        """Refuse if locked, else count the attempt as a failure (`force` counts even when locked)."""
        ...

    async def settle(
        self, keys: AttemptKeys, reservation: Reservation | None, outcome: Outcome, limits: LoginLimits
    ) -> None:
        """Settle a granted reservation (or, with None, apply a success that was never reserved)."""
        ...


@dataclass(slots=True)
class Book:
    """Live counter state for the keys of one attempt: values with absolute expiry times, and the
    spray set. Memory keeps one Book for everything; SQL loads one per transaction."""

    values: dict[str, tuple[int, float]] = field(default_factory=dict)
    sets: dict[str, tuple[set[str], float]] = field(default_factory=dict)

    def get(self, key: str, now: float) -> tuple[int, float]:
        value, expires = self.values.get(key, (0, 0.0))
        return (value, expires) if expires > now else (0, 0.0)

    def incr(self, key: str, ttl: float, now: float, *, refresh: bool) -> int:
        value, expires = self.get(key, now)
        if value == 0 or refresh:
            expires = now + ttl
        self.values[key] = (value + 1, expires)
        return value + 1

    def decr(self, key: str, now: float) -> None:
        value, expires = self.get(key, now)
        if value <= 1:
            self.values.pop(key, None)
        else:
            self.values[key] = (value - 1, expires)

    def members(self, key: str, now: float) -> tuple[set[str], float]:
        members, expires = self.sets.get(key, (set(), 0.0))
        return (members, expires) if expires > now else (set(), 0.0)


def _ttl(expires: float, now: float) -> int:
    return max(1, math.ceil(expires - now))


def peek_book(book: Book, keys: AttemptKeys, limits: LoginLimits, now: float) -> Lockout | None:
    found: list[Lockout] = []
    if keys.pair is not None and keys.lock is not None:
        count, expires = book.get(keys.pair, now)
        if count >= limits.pair_failures:
            found.append(Lockout("account_ip", _ttl(expires, now)))
        locked, expires = book.get(keys.lock, now)
        if locked:
            found.append(Lockout("account", _ttl(expires, now)))
    count, expires = book.get(keys.ip, now)
    if count > limits.ip_failures:
        found.append(Lockout("ip", _ttl(expires, now)))
    members, expires = book.members(keys.spray, now)
    if len(members) > limits.spray_accounts:
        found.append(Lockout("password_spraying", _ttl(expires, now)))
    return max(found, key=lambda lock: lock.retry_after) if found else None


def reserve_book(book: Book, keys: AttemptKeys, limits: LoginLimits, now: float, *, force: bool) -> Reservation:
    lockout = peek_book(book, keys, limits, now)
    if lockout is not None and not force:
        return Reservation(granted=False, lockout=lockout)
    reservation = Reservation(granted=True)
    if keys.pair is not None and keys.account is not None and keys.lock is not None and keys.member is not None:
        reservation.pair = book.incr(keys.pair, limits.pair_block_seconds, now, refresh=True)
        reservation.account = book.incr(keys.account, limits.account_reset_seconds, now, refresh=True)
        if reservation.account >= limits.account_failures:
            steps = reservation.account - limits.account_failures + 1
            wait = min(limits.account_max_wait, limits.account_wait_increment * steps)
            book.values[keys.lock] = (1, now + wait)
        members, expires = book.members(keys.spray, now)
        if not members:
            expires = now + limits.spray_window_seconds
        reservation.new_member = keys.member not in members
        members = {*members, keys.member}
        book.sets[keys.spray] = (members, expires)
        reservation.spray = len(members)
    reservation.ip = book.incr(keys.ip, limits.ip_window_seconds, now, refresh=False)
    reservation.lockout = peek_book(book, keys, limits, now)
    return reservation


def settle_book(
    book: Book,
    keys: AttemptKeys,
    reservation: Reservation | None,
    outcome: Outcome,
    limits: LoginLimits,
    now: float,
) -> None:
    reserved = reservation is not None and reservation.granted
    if outcome == "failure" or (outcome == "void" and not reserved):
        return
    if reserved:
        assert reservation is not None
        book.decr(keys.ip, now)
        if reservation.new_member and keys.member is not None:
            members, expires = book.members(keys.spray, now)
            members.discard(keys.member)
            book.sets[keys.spray] = (members, expires)
    if keys.pair is None or keys.account is None or keys.lock is None:
        return
    if outcome == "success" and limits.reset_on_success:
        for key in (keys.pair, keys.account, keys.lock):
            book.values.pop(key, None)
    elif reserved:
        book.decr(keys.pair, now)
        book.decr(keys.account, now)


class MemoryLedger:
    """One instance's ledger (also the fallback while the shared one is unreachable)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self.book = Book()

    def _sweep(self, now: float) -> None:
        book = self.book
        if len(book.values) + len(book.sets) < self._max_keys:
            return
        book.values = {k: v for k, v in book.values.items() if v[1] > now}
        book.sets = {k: v for k, v in book.sets.items() if v[1] > now}

    # No await inside these methods: each runs in one event-loop turn, which makes it atomic.
    async def peek(self, keys: AttemptKeys, limits: LoginLimits) -> Lockout | None:
        return peek_book(self.book, keys, limits, self._clock())

    async def reserve(self, keys: AttemptKeys, limits: LoginLimits, *, force: bool = False) -> Reservation:
        now = self._clock()
        self._sweep(now)
        return reserve_book(self.book, keys, limits, now, force=force)

    async def settle(
        self, keys: AttemptKeys, reservation: Reservation | None, outcome: Outcome, limits: LoginLimits
    ) -> None:
        settle_book(self.book, keys, reservation, outcome, limits, self._clock())
