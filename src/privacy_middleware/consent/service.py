"""The consent service: records changes, keeps a short-lived cache, and decides per request.

Reads: an anonymous visitor's consent comes from the signed cookie (no database read); a known
subject's from the store through a TTL cache that every instance drops as soon as any instance
changes that subject's consent (invalidation bus). Writes append a record, sign a receipt, drop the
cache entry here and publish the change. If the store cannot be read, every consent-based purpose is
denied with reason `store_unavailable` (fail closed); purposes that need no consent are unaffected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from ..errors import PrivacyError
from ..netaddr import network_hint
from ..policy.schema import Policy
from ..store.bus import Bus
from ..store.consent import AlreadyLinked, ConsentRepository
from ..store.consent_records import (
    Choice,
    ConsentRecord,
    ConsentState,
    Holder,
    Method,
    user_agent_family,
    utcnow,
)
from ..store.database import Database
from .cookie import DEFAULT_MAX_AGE, ConsentCookieCodec, CookieConsent
from .decisions import Decision, Signals, compatible_versions, decide, needs_choice
from .receipts import ReceiptSigner
from .tcf import DEFAULT_TCF_RULES, TCFError, TCFRules, TCString, consented_purposes, parse_tc_string

log = logging.getLogger(__name__)
TOPIC = "consent.changed"
_STORE_ERRORS = (SQLAlchemyError, OSError, ConnectionError, asyncio.TimeoutError)


class StoreUnavailable(PrivacyError):
    def __init__(self) -> None:
        super().__init__("store_unavailable", "the consent store is unavailable; try again later", 503)


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What a change produced: the record, its signed receipt, the new state and cookie."""

    record: ConsentRecord
    receipt: str
    state: ConsentState
    cookie: str
    set_cookie: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """One request's decision plus where it came from (for the API and the audit)."""

    decision: Decision
    holder: Holder | None
    source: str  # "cookie", "store", "none" or "store_unavailable"
    choices: Mapping[str, Choice]
    gpc: bool
    tcf: str  # "absent", "valid" or "invalid"


@dataclass(slots=True)
class _Cached:
    """A holder's state as read from the store, until `expires` (monotonic seconds) or a change
    (here, or on any instance through the bus), with the resolutions decided from it by their inputs."""

    expires: float
    state: ConsentState
    resolutions: dict[tuple[Any, ...], Resolution]


# Distinct input combinations (cookie, GPC, TC string, flags) remembered per cached state.
_RESOLUTIONS_PER_STATE = 8
_VISITOR_MEMO_SIZE = 4096
_VISITOR_MEMO_SECONDS = 5.0


def new_visitor_id() -> str:
    """An unguessable pseudonymous visitor id (never derived from anything about the person)."""
    return "v" + secrets.token_urlsafe(18)


class ConsentService:
    def __init__(
        self,
        database: Database,
        policy: Policy,
        *,
        cookie_secret: bytes,
        signing_key: Ed25519PrivateKey,
        bus: Bus | None = None,
        cache_ttl: float = 5.0,
        cache_size: int = 10_000,
        cookie_max_age: int = DEFAULT_MAX_AGE,
        old_cookie_secrets: tuple[bytes, ...] = (),
        registry: CollectorRegistry | None = None,
        store_timeout: float = 2.0,
        tcf_rules: TCFRules = DEFAULT_TCF_RULES,
        secure_cookie: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.repository = ConsentRepository(database)
        self.cookies = ConsentCookieCodec(
            cookie_secret,
            max_age=cookie_max_age,
            old_secrets=old_cookie_secrets,
            registry=registry,
            clock=clock,
            secure=secure_cookie,
        )
        self.receipts = ReceiptSigner(signing_key)
        self.bus = bus
        self.store_timeout = store_timeout
        self.tcf_rules = tcf_rules
        self.compatible = compatible_versions(policy)
        self.choosable = frozenset(name for name, p in policy.purposes.items() if needs_choice(p))
        self.gpc_purposes = frozenset(n for n, p in policy.purposes.items() if p.gpc_opt_out and needs_choice(p))
        # Cache key -> state; plain dicts (bounded, expiry checked on read) keep the hot path short.
        self._states: dict[str, _Cached] = {}
        self._cache_keys: dict[str, str] = {}  # holder key -> cache key (its digest, computed once)
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._tcf_cache: LRUCache[str, frozenset[int] | None] = LRUCache(maxsize=1024)
        # Verified cookies (exact value -> content); only genuine ones enter, expiry is rechecked.
        self._cookie_cache: LRUCache[str, tuple[CookieConsent, dict[str, Choice]]] = LRUCache(maxsize=4096)
        # Decisions for visitors (no subject), by their inputs; short-lived so cookie expiry still bites.
        self._visitor_resolutions: dict[tuple[Any, ...], tuple[float, Resolution]] = {}
        self._clock = clock
        # Bumped on every invalidation: a read that raced with one is not cached.
        self._invalidations = 0
        # Called with every appended record (the audit trail records consent changes).
        self.listeners: list[Callable[[ConsentRecord], Any]] = []
        if bus is not None:
            bus.subscribe(TOPIC, self._on_changed)

    # -- cache -----------------------------------------------------------------------------------

    def cache_key(self, holder: Holder) -> str:
        """Opaque key for the cache and the bus: no subject id travels through Redis."""
        return self._key(holder.key)

    def _key(self, holder_key: str) -> str:
        key = self._cache_keys.get(holder_key)
        if key is None:
            key = hashlib.sha256(holder_key.encode()).hexdigest()[:32]
            if len(self._cache_keys) >= self._cache_size:
                self._cache_keys.clear()
            self._cache_keys[holder_key] = key
        return key

    def invalidate(self, holder: Holder) -> None:
        self._invalidations += 1
        self._states.pop(self.cache_key(holder), None)

    async def _on_changed(self, payload: str) -> None:
        self._invalidations += 1
        self._states.pop(payload, None)

    def _cached(self, key: str) -> _Cached | None:
        entry = self._states.get(key)
        if entry is not None and entry.expires > time.monotonic():
            return entry
        return None

    def _keep(self, key: str, state: ConsentState) -> None:
        now = time.monotonic()
        if len(self._states) >= self._cache_size:
            # expired entries first, then the oldest half (insertion order): memory stays bounded
            self._states = {k: e for k, e in self._states.items() if e.expires > now}
            if len(self._states) >= self._cache_size:
                self._states = dict(list(self._states.items())[len(self._states) // 2 :])
        self._states[key] = _Cached(now + self._cache_ttl, state, {})

    async def _publish(self, holder: Holder) -> None:
        self.invalidate(holder)
        if self.bus is None:
            return
        try:
            await self.bus.publish(TOPIC, self.cache_key(holder))
        except Exception as exc:  # other instances catch up within one cache TTL
            log.warning("consent change not broadcast (%s)", exc.__class__.__name__)

    # -- reads -----------------------------------------------------------------------------------

    async def state(self, holder: Holder) -> ConsentState:
        """Current state of a holder (cached). Raises `StoreUnavailable` if the store fails."""
        key = self.cache_key(holder)
        cached = self._cached(key)
        if cached is not None:
            return cached.state
        generation = self._invalidations
        try:
            state = await asyncio.wait_for(self.repository.current(holder), self.store_timeout)
        except _STORE_ERRORS:
            raise StoreUnavailable() from None
        if generation == self._invalidations:
            self._keep(key, state)
        return state

    async def history(self, holder: Holder) -> list[ConsentRecord]:
        """Every record of the holder (for a subject, also of the visitors linked to it), oldest first."""
        try:
            records = await self.repository.history(holder)
            if holder.kind == "subject":
                for visitor_id in await self.repository.visitors_of(holder.id):
                    records.extend(await self.repository.history(Holder.visitor(visitor_id)))
        except _STORE_ERRORS:
            raise StoreUnavailable() from None
        records.sort(key=lambda r: r.recorded_at)
        return records

    # -- writes ----------------------------------------------------------------------------------

    def validate_purposes(self, purposes: Mapping[str, Any]) -> dict[str, bool]:
        """Refuse unknown purposes, purposes that need no consent, and non-boolean values (422)."""
        valid = sorted(self.choosable)
        unknown = sorted(k for k in purposes if k not in self.policy.purposes)
        if unknown:
            raise PrivacyError(
                "unknown_purpose",
                "unknown purpose(s); see valid_purposes",
                422,
                extra={"unknown_purposes": unknown[:20], "valid_purposes": valid},
            )
        fixed = sorted(k for k in purposes if k not in self.choosable)
        if fixed:
            raise PrivacyError(
                "purpose_not_consent_based",
                "these purposes do not depend on consent and cannot be chosen",
                422,
                extra={"purposes": fixed, "valid_purposes": valid},
            )
        wrong = sorted(k for k, v in purposes.items() if not isinstance(v, bool))
        if wrong:
            raise PrivacyError("invalid_choice", "each purpose must be true or false", 422, extra={"purposes": wrong})
        return {k: bool(v) for k, v in purposes.items()}

    def _record(
        self,
        holder: Holder,
        purposes: Mapping[str, bool],
        method: Method,
        client_ip: str | None,
        user_agent: str | None,
        linked_from: str | None = None,
    ) -> ConsentRecord:
        record = ConsentRecord(
            id=ConsentRecord.new_id(),
            holder=holder,
            purposes=dict(purposes),
            policy_version=self.policy.policy.version,
            method=method,
            recorded_at=utcnow(),
            ip_prefix=network_hint(client_ip),
            ua_family=user_agent_family(user_agent),
            linked_from=linked_from,
        )
        return dataclasses.replace(record, receipt=self.receipts.sign(record, self.policy))

    def _result(self, record: ConsentRecord, state: ConsentState) -> ChangeResult:
        cookie = self.cookie_for(state)
        assert record.receipt is not None
        return ChangeResult(record, record.receipt, state, cookie, self.cookies.set_cookie_header(cookie))

    def cookie_for(self, state: ConsentState) -> str:
        if state.holder is None:
            raise ValueError("a consent cookie needs a holder")
        # A grant under a version that no longer counts is left out: the visitor is asked again.
        choices = state.choices.items()
        granted = {p for p, c in choices if c.granted and c.policy_version in self.compatible}
        denied = {p for p, c in choices if not c.granted}
        return self.cookies.encode(state.holder, granted, denied, self.policy.policy.version)

    async def _append(self, record: ConsentRecord) -> ConsentState:
        try:
            await asyncio.wait_for(self.repository.append(record), self.store_timeout)
            await self._publish(record.holder)
            state = await asyncio.wait_for(self.repository.current(record.holder), self.store_timeout)
        except _STORE_ERRORS:
            raise StoreUnavailable() from None
        for listener in self.listeners:
            await listener(record)
        return state

    async def set_purposes(
        self,
        holder: Holder,
        purposes: Mapping[str, Any],
        *,
        method: Method = "api",
        client_ip: str | None = None,
        user_agent: str | None = None,
    ) -> ChangeResult:
        choices = self.validate_purposes(purposes)
        if not choices:
            raise PrivacyError("no_purposes", "name at least one purpose", 422)
        record = self._record(holder, choices, method, client_ip, user_agent)
        return self._result(record, await self._append(record))

    async def withdraw(
        self, holder: Holder, *, client_ip: str | None = None, user_agent: str | None = None
    ) -> ChangeResult:
        """Refuse every consent-based purpose at once."""
        record = self._record(holder, dict.fromkeys(sorted(self.choosable), False), "withdrawal", client_ip, user_agent)
        return self._result(record, await self._append(record))

    async def apply_gpc(
        self, holder: Holder, *, client_ip: str | None = None, user_agent: str | None = None
    ) -> ChangeResult | None:
        """Persist a GPC opt-out, so that the signal's later absence is not an opt-in.

        Records a `gpc` refusal of every `gpc_opt_out` purpose not already refused; returns None
        when there is nothing to change (call it on every request with `Sec-GPC: 1`).
        """
        state = await self.state(holder)
        to_deny = sorted(p for p in self.gpc_purposes if p not in state.denied())
        if not to_deny:
            return None
        record = self._record(holder, dict.fromkeys(to_deny, False), "gpc", client_ip, user_agent)
        return self._result(record, await self._append(record))

    async def link_visitor(
        self,
        visitor_id: str,
        subject: str,
        *,
        client_ip: str | None = None,
        user_agent: str | None = None,
    ) -> ChangeResult | None:
        """Move a visitor's choices to the subject's account when they log in.

        A visitor's choice wins over the subject's when it is newer; a grant moves only if it was
        given under a compatible policy version (a refusal always moves). Returns None when
        nothing moved (already linked, or no newer choice).
        """
        subject_holder = Holder.subject(subject)

        def build(visitor: ConsentState, current: ConsentState) -> ConsentRecord | None:
            moved: dict[str, bool] = {}
            for purpose, choice in visitor.choices.items():
                if purpose not in self.choosable:
                    continue
                if choice.granted and choice.policy_version not in self.compatible:
                    continue
                mine = current.choices.get(purpose)
                if mine is None or mine.at < choice.at:
                    moved[purpose] = choice.granted
            if not moved:
                return None
            return self._record(subject_holder, moved, "account_link", client_ip, user_agent, visitor_id)

        try:
            record = await asyncio.wait_for(
                self.repository.link(visitor_id, subject, build, at=utcnow()), self.store_timeout
            )
        except AlreadyLinked:
            raise PrivacyError("visitor_linked", "this visitor is linked to another account", 409) from None
        except _STORE_ERRORS:
            raise StoreUnavailable() from None
        if record is None:
            return None
        await self._publish(subject_holder)
        return self._result(record, await self.state(subject_holder))

    # -- decisions -------------------------------------------------------------------------------

    def _tcf(self, tc_string: str | None) -> tuple[str, frozenset[int] | None]:
        if not tc_string:
            return "absent", None
        if tc_string in self._tcf_cache:
            cached = self._tcf_cache[tc_string]
            return ("valid", cached) if cached is not None else ("invalid", None)
        try:
            tc: TCString = parse_tc_string(tc_string, self.tcf_rules)
            purposes: frozenset[int] | None = consented_purposes(tc)
        except TCFError:
            purposes = None
        self._tcf_cache[tc_string] = purposes
        return ("valid", purposes) if purposes is not None else ("invalid", None)

    def verify_cookie(self, value: str | None) -> CookieConsent | None:
        verified = self._cookie(value) if value else None
        return verified[0] if verified is not None else None

    def _cookie(self, value: str) -> tuple[CookieConsent, dict[str, Choice]] | None:
        cached = self._cookie_cache.get(value)
        if cached is not None:
            if cached[0].expires_at > self._clock():
                return cached
            del self._cookie_cache[value]
        consent = self.cookies.decode(value)  # counts forged, expired and malformed cookies
        if consent is None:
            return None
        verified = (consent, self.choices_from_cookie(consent))
        self._cookie_cache[value] = verified
        return verified

    @staticmethod
    def choices_from_cookie(consent: CookieConsent) -> dict[str, Choice]:
        at = dt.datetime.fromtimestamp(consent.issued_at, dt.UTC)
        choices = {p: Choice(True, consent.policy_version, "api", at, "") for p in consent.granted}
        choices.update({p: Choice(False, consent.policy_version, "api", at, "") for p in consent.denied})
        return choices

    def remembered_visitor(self, consent_cookie: str | None, gpc: bool, tc_string: str | None) -> Resolution | None:
        """What `resolve` answers without a subject when it has it remembered (its first look-up,
        made without awaiting anything); None when `resolve` must be awaited."""
        memo = self._visitor_resolutions.get((consent_cookie, gpc, tc_string, frozenset(), False))
        if memo is not None and memo[0] > self._clock():
            return memo[1]
        return None

    async def resolve(
        self,
        *,
        subject: str | None = None,
        consent_cookie: str | None = None,
        gpc: bool = False,
        tc_string: str | None = None,
        objected: frozenset[str] = frozenset(),
        restricted: bool = False,
    ) -> Resolution:
        """Decide every purpose for one request.

        A known subject's stored state is used (so a withdrawal made on another device counts),
        or, while the subject has no stored choice at all, the browser's visitor cookie; without a
        subject, the signed cookie; otherwise no choice at all (mechanism defaults).
        """
        memo_key = (consent_cookie, gpc, tc_string, objected, restricted)
        if subject:
            # A subject's answer depends on these inputs and their stored state: it is kept with
            # the cached state and goes when the state goes (a change anywhere, or its TTL).
            cached = self._cached(self._key("s:" + subject))
            if cached is not None:
                found = cached.resolutions.get(memo_key)
                if found is not None:
                    return found
        else:
            # Without a subject the answer depends only on these inputs (a signed cookie never
            # changes: a new choice is a new cookie), so a browser's repeat requests share it.
            memo = self._visitor_resolutions.get(memo_key)
            if memo is not None and memo[0] > self._clock():
                return memo[1]
        holder: Holder | None = None
        choices: Mapping[str, Choice] = {}
        source = "none"
        store_unavailable = False
        verified = self._cookie(consent_cookie) if consent_cookie else None
        if subject:
            holder = Holder.subject(subject)
            try:
                state = await self.state(holder)
                choices, source = state.choices, "store"
            except StoreUnavailable:
                store_unavailable, source = True, "store_unavailable"
            # A subject who never chose anything yet (e.g. the visitor's choices are not linked
            # yet) keeps what this browser's own visitor cookie says.
            if not choices and not store_unavailable and verified is not None and verified[0].holder.kind == "visitor":
                choices, source = verified[1], "cookie"
        elif verified is not None:
            holder, choices, source = verified[0].holder, verified[1], "cookie"
        tcf_status, tcf_purposes = self._tcf(tc_string)
        signals = Signals(
            choices=choices,
            gpc=gpc,
            tcf_purposes=tcf_purposes,
            tcf_invalid=tcf_status == "invalid",
            objected=objected,
            restricted=restricted,
            store_unavailable=store_unavailable,
        )
        resolution = Resolution(
            decision=decide(self.policy, signals, compatible=self.compatible),
            holder=holder,
            source=source,
            choices=choices,
            gpc=gpc,
            tcf=tcf_status,
        )
        if not subject:
            if source != "store_unavailable":
                self._remember_visitor(memo_key, resolution)
        elif holder is not None and source != "store_unavailable":
            # only onto the very state the resolution was decided from (a change drops that entry)
            cached = self._cached(self.cache_key(holder))
            same_state = cached is not None and (
                (source == "store" and cached.state.choices is choices)
                or (source == "cookie" and not cached.state.choices)
            )
            if same_state and cached is not None and len(cached.resolutions) < _RESOLUTIONS_PER_STATE:
                cached.resolutions[memo_key] = resolution
        return resolution

    def _remember_visitor(self, inputs: tuple[Any, ...], resolution: Resolution) -> None:
        now = self._clock()
        if len(self._visitor_resolutions) >= _VISITOR_MEMO_SIZE:
            fresh = {k: v for k, v in self._visitor_resolutions.items() if v[0] > now}
            self._visitor_resolutions = fresh if len(fresh) < _VISITOR_MEMO_SIZE // 2 else {}
        self._visitor_resolutions[inputs] = (now + _VISITOR_MEMO_SECONDS, resolution)

    async def decide(
        self,
        *,
        subject: str | None = None,
        consent_cookie: str | None = None,
        gpc: bool = False,
        tc_string: str | None = None,
        objected: frozenset[str] = frozenset(),
        restricted: bool = False,
    ) -> Decision:
        resolution = await self.resolve(
            subject=subject,
            consent_cookie=consent_cookie,
            gpc=gpc,
            tc_string=tc_string,
            objected=objected,
            restricted=restricted,
        )
        return resolution.decision
