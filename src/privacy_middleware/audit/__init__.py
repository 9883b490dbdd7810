"""The audit trail: OCSF-shaped events, a batching writer, a tamper-evident log that can
still be erased by retention, offline verification, login lockout and the subject's access log.
"""

from ..keyfiles import load_or_create_signing_key
from .checkpoint import Checkpoint, load_public_key
from .counters import CounterBackend, MemoryCounters, RedisCounters
from .detectors import Lockout, LoginGuard, LoginLimits, LoginSignals
from .events import (
    AuditEvent,
    account_change,
    admin_read,
    consent_change,
    data_access,
    detection_finding,
    events_dropped,
    key_operation,
    lifecycle,
    login_attempt,
    logout,
    network_hint,
    subject_request,
)
from .export import ExportSummary, export, export_main
from .log import AppendResult, AuditLog
from .query import AccessLog, AuditRecord, DisclosureEntry, LoginEntry, access_log, reveal_side_record, search
from .retention import RetentionReport, purge
from .sealing import SealedEvent, SideRecordSealer
from .spool import SpoolCorruptError
from .verify import VerifyReport, verify
from .verify import main as verify_main
from .writer import DEFAULT_STRICT_KINDS, AuditWriter

__all__ = [
    "DEFAULT_STRICT_KINDS",
    "AccessLog",
    "AppendResult",
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "AuditWriter",
    "Checkpoint",
    "CounterBackend",
    "DisclosureEntry",
    "ExportSummary",
    "Lockout",
    "LoginEntry",
    "LoginGuard",
    "LoginLimits",
    "LoginSignals",
    "MemoryCounters",
    "RedisCounters",
    "RetentionReport",
    "SealedEvent",
    "SideRecordSealer",
    "SpoolCorruptError",
    "VerifyReport",
    "access_log",
    "account_change",
    "admin_read",
    "consent_change",
    "data_access",
    "detection_finding",
    "events_dropped",
    "export",
    "export_main",
    "key_operation",
    "lifecycle",
    "load_or_create_signing_key",
    "load_public_key",
    "login_attempt",
    "logout",
    "network_hint",
    "purge",
    "reveal_side_record",
    "search",
    "subject_request",
    "verify",
    "verify_main",
]
