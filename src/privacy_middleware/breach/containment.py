"""Containment: suspend a principal's or a recipient's access until an officer lifts it.

Suspensions live in the store (so every instance and the CLI agree) and in an in-memory set the
request path checks: a dictionary lookup per planned request, nothing when nobody is suspended.
Both actions are audit events. A suspended caller gets 403 `access_suspended` on every route
that carries personal data, and PrivacyTransport refuses transfers to a suspended recipient.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from ..audit.events import AuditEvent, containment
from ..context import Principal
from ..errors import PrivacyError
from ..store import Database
from ..store.breach import SuspensionRow, insert_suspension, lift_suspension, read_suspensions

logger = logging.getLogger("privacy_middleware.breach")

TARGET_KINDS = ("principal", "recipient")


class EventSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...

    async def emit_strict(self, event: AuditEvent) -> None: ...


def suspended_error() -> PrivacyError:
    return PrivacyError(
        "access_suspended",
        "Access to personal data is suspended for this caller pending a security review.",
        403,
    )


@dataclass(frozen=True, slots=True)
class Lifted:
    target_kind: str
    target: str
    rows: int


class Suspensions:
    def __init__(self, database: Database, audit: EventSink) -> None:
        self.database = database
        self.audit = audit
        self._active: frozenset[tuple[str, str]] = frozenset()

    async def refresh(self) -> None:
        async with self.database.connect() as conn:
            rows = await read_suspensions(conn, active_only=True)
        self._active = frozenset((row.target_kind, row.target) for row in rows)

    @property
    def any(self) -> bool:
        return bool(self._active)

    def blocks(self, principal: Principal | None) -> bool:
        active = self._active
        if not active or principal is None:
            return False
        return ("principal", principal.id) in active or ("recipient", principal.recipient) in active

    def blocks_recipient(self, recipient: str) -> bool:
        return bool(self._active) and ("recipient", recipient) in self._active

    async def suspend(
        self, target_kind: str, target: str, *, by: str, reason: str, finding_uid: str | None = None
    ) -> bool:
        """True when a new suspension started (False: the target was already suspended)."""
        _check(target_kind, target)
        async with self.database.begin() as conn:
            created = await insert_suspension(
                conn, target_kind, target, finding_uid=finding_uid, reason=reason, now_us=time.time_ns() // 1000
            )
        if created is not None:
            self.audit.emit(
                containment(
                    "suspend",
                    target_kind=target_kind,
                    target=target,
                    principal=by,
                    reason=reason,
                    finding_uid=finding_uid,
                )
            )
            logger.warning("access suspended for a %s after a breach finding", target_kind)
        await self.refresh()
        return created is not None

    async def lift(self, target_kind: str, target: str, *, by: str, reason: str = "lifted by an officer") -> Lifted:
        """Restore access; recorded in the trail before it takes effect (no record, no lift)."""
        _check(target_kind, target)
        active = [r for r in await self.list() if r.target_kind == target_kind and r.target == target]
        if not active:
            return Lifted(target_kind, target, 0)
        await self.audit.emit_strict(
            containment(
                "lift",
                target_kind=target_kind,
                target=target,
                principal=by,
                reason=reason,
                finding_uid=active[0].finding_uid,
            )
        )
        async with self.database.begin() as conn:
            rows = await lift_suspension(conn, target_kind, target, lifted_by=by, now_us=time.time_ns() // 1000)
        await self.refresh()
        return Lifted(target_kind, target, len(rows))

    async def list(self, *, include_lifted: bool = False) -> list[SuspensionRow]:
        async with self.database.connect() as conn:
            return await read_suspensions(conn, active_only=not include_lifted)


def _check(target_kind: str, target: str) -> None:
    if target_kind not in TARGET_KINDS:
        raise PrivacyError("invalid_target", "A suspension names a principal or a recipient.", 400)
    if not target or len(target) > 200 or not target.isprintable():
        raise PrivacyError("invalid_target", "The suspended principal or recipient is not a valid name.", 400)
