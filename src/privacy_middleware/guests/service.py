"""The guest service: guest subjects, order capabilities, one-time e-mail codes, guest sessions.

A guest's subject is a keyed blind index of their normalised e-mail address (the tenant's index
key, so every instance derives the same subject and nobody without the key can compute it). The
shop's order-access capability (its order token) is bound to that subject from the checkout
response; presenting it later makes the caller the owner on the policy's guest order routes. To
exercise their rights a guest proves their address with a one-time code sent by e-mail and gets a
short guest session (a signed bearer token) that the rights API accepts like a customer's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any, Protocol

import jwt

from ..audit.counters import RedisCounters
from ..context import Principal
from ..errors import PrivacyError
from ..netguard import OutboundGuard
from ..policy.schema import Policy
from ..settings import GuestSettings, SmtpSettings
from ..store import guests as store
from ..store.database import Database
from .limits import CounterLimit, SharedLimit, StoreLimit
from .mail import send_mail

GUEST_PREFIX = "guest_"
SESSION_PREFIX = "pmg."
EMAIL_INDEX_CATEGORY = "guest.email"
HOUR = 3600.0


class BlindIndex(Protocol):
    async def blind_index(self, value: str, *, category: str) -> str: ...


def rate_limited(message: str) -> PrivacyError:
    return PrivacyError("rate_limited", message, 429, headers={"Retry-After": "3600"})


def invalid_email() -> PrivacyError:
    return PrivacyError("invalid_email", "Give the e-mail address used at checkout.", 422, extra={"field": "email"})


class GuestService:
    def __init__(
        self,
        *,
        policy: Policy,
        database: Database,
        index: BlindIndex,
        secret: bytes,
        settings: GuestSettings,
        smtp: SmtpSettings,
        limits: SharedLimit | None = None,
        outbound: OutboundGuard | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.database = database
        self.index = index
        self.secret = secret
        self.settings = settings
        self.smtp = smtp
        self.outbound = outbound or OutboundGuard(purpose="configured destination")
        self.clock = clock
        # Shared by every instance (Redis or the store): a limit per process would multiply with them.
        self.limits: SharedLimit = limits or StoreLimit(database, clock)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def _hash(self, purpose: str, value: str) -> str:
        return hmac.new(self.secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _checked_email(email: Any) -> str:
        if not isinstance(email, str) or len(email) > 320 or email.count("@") != 1:
            raise invalid_email()
        local, domain = email.strip().split("@")
        if not local or "." not in domain:
            raise invalid_email()
        return email.strip()

    async def subject_for_email(self, email: Any) -> str:
        """The guest subject of an address (case, Unicode form and spaces do not matter)."""
        index = await self.index.blind_index(self._checked_email(email), category=EMAIL_INDEX_CATEGORY)
        return GUEST_PREFIX + index.rsplit(".", 1)[-1].replace("-", "").replace("_", "")[:32]

    def principal(self, subject: str) -> Principal:
        return Principal(
            id=subject,
            subject=subject,
            recipient=self.policy.identity.customer_recipient,
            purpose=None,
            claims={"guest": True},
        )

    # -- order capabilities -------------------------------------------------------------------

    async def bind(self, capability: str, subject: str) -> None:
        await store.bind_capability(
            self.database,
            self._hash("capability", capability),
            subject,
            days=self.policy.guests.capability_days,
            now=self._now(),
        )

    async def owner_of(self, capability: str) -> str | None:
        return await store.capability_subject(self.database, self._hash("capability", capability), now=self._now())

    async def forget(self, subject: str) -> int:
        return await store.forget_guest(self.database, subject)

    # -- one-time codes and guest sessions --------------------------------------------------------

    async def send_code(self, email: Any, client_ip: str | None) -> None:
        """E-mail a one-time code to the address (rate-limited per address and per network)."""
        address = self._checked_email(email)
        email_hash = self._hash("email", address.casefold())
        settings = self.settings
        if not await self.limits.hit(
            "g:ci:" + self._hash("ip", client_ip or "unknown"), settings.codes_per_ip_per_hour, HOUR
        ) or not await self.limits.hit("g:ce:" + email_hash, settings.codes_per_email_per_hour, HOUR):
            raise rate_limited("Too many codes were asked for; try again later.")
        code = f"{secrets.randbelow(1_000_000):06d}"
        expires = self._now() + dt.timedelta(minutes=self.settings.code_minutes)
        await store.store_code(self.database, email_hash, self._hash("code", email_hash + code), expires_at=expires)
        message = EmailMessage()
        message["From"] = self.smtp.sender
        message["To"] = address
        message["Subject"] = f"Your code for your data at {self.policy.policy.controller or self.policy.policy.name}"
        message.set_content(
            f"Your one-time code is {code}.\n\nIt is valid for {int(self.settings.code_minutes)} minutes. "
            "If you did not ask for it, ignore this message.\n"
        )
        await send_mail(self.smtp, message, self.outbound)

    async def verify_code(self, email: Any, code: Any, client_ip: str | None = None) -> tuple[str, str]:
        """(guest session token, subject) for a correct code; each code works once, and each client
        may try `verifications_per_ip_per_hour` codes (every instance counts in the same place)."""
        address = self._checked_email(email)
        email_hash = self._hash("email", address.casefold())
        if not await self.limits.hit(
            "g:vi:" + self._hash("ip", client_ip or "unknown"), self.settings.verifications_per_ip_per_hour, HOUR
        ):
            raise rate_limited("Too many codes were tried; try again later.")
        live = await store.take_code(
            self.database, email_hash, max_attempts=self.settings.code_attempts, now=self._now()
        )
        wrong = PrivacyError("invalid_code", "The code is wrong or has expired; ask for a new one.", 400)
        if live is None or not isinstance(code, str):
            raise wrong
        if not hmac.compare_digest(live[0], self._hash("code", email_hash + code.strip())):
            raise wrong
        await store.drop_code(self.database, email_hash)
        subject = await self.subject_for_email(address)
        now = int(self.clock())
        claims = {"sub": subject, "typ": "guest", "iat": now, "exp": now + int(self.settings.session_minutes * 60)}
        return SESSION_PREFIX + jwt.encode(claims, self.secret, algorithm="HS256"), subject

    def session_subject(self, token: str) -> str | None:
        """The guest subject of a guest session token; None if it is not one (401 if it is bad)."""
        if not token.startswith(SESSION_PREFIX):
            return None
        try:
            claims = jwt.decode(
                token[len(SESSION_PREFIX) :],
                self.secret,
                algorithms=["HS256"],
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError:
            from ..identity.jwt import unauthorized

            raise unauthorized("The guest session is invalid or has expired.") from None
        subject = claims.get("sub")
        if claims.get("typ") != "guest" or not isinstance(subject, str) or not subject.startswith(GUEST_PREFIX):
            return None
        return subject


def build_guests(runtime: Any) -> GuestService | None:
    """The guest service when the policy declares guest checkouts or guest order routes."""
    policy: Policy = runtime.policy
    if not policy.guests.checkouts and not policy.guests.order_routes:
        return None
    settings = runtime.settings
    redis = getattr(runtime, "redis", None)
    limits: SharedLimit = (
        CounterLimit(RedisCounters(redis, prefix=f"{settings.redis_prefix}guest:"))
        if redis is not None
        else StoreLimit(runtime.database)
    )
    service = GuestService(
        policy=policy,
        database=runtime.database,
        index=runtime.keys,
        secret=settings.secret(settings.guests.secret, "guest.key", "guest key"),
        settings=settings.guests,
        smtp=settings.smtp,
        limits=limits,
        outbound=settings.outbound.configured_guard(),
    )
    return service
