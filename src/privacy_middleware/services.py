"""The services the runtime builds once from Settings, as one typed, frozen record.

The pipeline's step builders, the privacy API and the transport read what they need from it;
steps themselves take only the services they use. Nothing here builds anything (that is
`runtime.py`, the composition root), so importing this module costs nothing and imports no face.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from .audit.detectors import LoginGuard
from .audit.log import AuditLog
from .audit.writer import AuditWriter
from .breach.service import BreachService
from .consent.service import ConsentService
from .crypto.handle import KeyServiceHandle
from .fields.engine import FieldEngine
from .guests.service import GuestService
from .identity import IdentityChain, TokenVerifier
from .metrics import Metrics
from .policy.access import Access
from .policy.schema import Policy
from .rights.closure import AccountClosure
from .rights.service import RightsService
from .settings import Settings
from .store import Database
from .store.bus import Bus
from .store.record_owners import RecordOwners


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    policy: Policy
    metrics: Metrics
    database: Database
    http: httpx.AsyncClient
    verifier: TokenVerifier
    identity: IdentityChain
    bus: Bus
    keys: KeyServiceHandle
    fields: FieldEngine
    consent: ConsentService
    audit_log: AuditLog
    audit: AuditWriter
    login_guard: LoginGuard
    access: Access
    closure: AccountClosure
    rights: RightsService | None
    guests: GuestService | None
    breach: BreachService
    record_owners: RecordOwners | None
    # Connects the store and starts the writers (idempotent): the transport calls it before its first use.
    ensure_started: Callable[[], Awaitable[None]]
