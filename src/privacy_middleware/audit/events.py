"""Audit events shaped after OCSF, built only through the functions below.

An event body holds names, labels and coarse hints (P0/P1 in research/audit.md §b), never
personal values. The few raw values the security promise needs (client IP, username, user
agent) travel in `personal`, which the log seals into encrypted side records before anything
touches a disk; the body then carries only a salted commitment to them.
"""

from __future__ import annotations

import os
import re
import time as _time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..netaddr import network_hint

# OCSF class uids (category * 1000 + class).
BASE_EVENT = 0
ACCOUNT_CHANGE = 3001
AUTHENTICATION = 3002
DETECTION_FINDING = 2004
API_ACTIVITY = 6003

SEVERITY_INFORMATIONAL = 1
SEVERITY_LOW = 2
SEVERITY_MEDIUM = 3
SEVERITY_HIGH = 4
SEVERITY_CRITICAL = 5

MAX_KIND = 80  # the width of privacy_audit_events.kind

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
_ROUTE = re.compile(r"^[A-Z]{3,7} /[\x21-\x7e]*$")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit record before sequencing. `personal` never reaches the log in clear."""

    kind: str
    class_uid: int
    activity_id: int
    time: datetime
    uid: str
    detail: Mapping[str, Any]
    severity_id: int = SEVERITY_INFORMATIONAL
    status: str | None = None
    subject: str | None = None
    principal: str | None = None
    personal: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def type_uid(self) -> int:
        return self.class_uid * 100 + self.activity_id

    def document(self) -> dict[str, Any]:
        """The P0/P1 part of the leaf (commitments and sequence are added by the log)."""
        return {
            "v": 1,
            "uid": self.uid,
            "kind": self.kind,
            "time": format_time(self.time),
            "class_uid": self.class_uid,
            "category_uid": self.class_uid // 1000,
            "activity_id": self.activity_id,
            "type_uid": self.type_uid,
            "severity_id": self.severity_id,
            "status": self.status,
            "subject": self.subject,
            "principal": self.principal,
            "detail": dict(self.detail),
        }


def format_time(value: datetime) -> str:
    """UTC with microseconds, so the time inside the leaf is exact and sortable."""
    if value.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    v = value if value.tzinfo is UTC else value.astimezone(UTC)
    # YYYY-MM-DDTHH:MM:SS.ffffffZ, as isoformat(timespec="microseconds") spells it, in half the time
    return _TIME % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)


_TIME = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return (value - _EPOCH) // _MICROSECOND


def new_uid() -> str:
    """A UUIDv7 (time-ordered) so sinks can deduplicate and sort on it."""
    # 48-bit Unix milliseconds, then 80 random bits of which the version (7) and the variant (0b10)
    # take six: what str(uuid.UUID(bytes=...)) prints, without building the object
    value = bytearray((_time.time_ns() // 1_000_000 & _MS_MASK).to_bytes(6, "big") + os.urandom(10))
    value[6] = 0x70 | value[6] & 0x0F
    value[8] = 0x80 | value[8] & 0x3F
    h = value.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_MS_MASK = (1 << 48) - 1


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or len(value) > 120 or not _NAME.match(value):
        raise ValueError(f"{what} must be a dotted lower-case name")
    return value


def _names(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str):
        raise ValueError(f"{what} must be a list of names")
    return sorted({_name(v, what) for v in values})


def _identifier(value: str | None, what: str) -> str | None:
    """Subject/principal ids are pseudonymous handles, bounded and printable."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 200 or not value.isprintable():
        raise ValueError(f"{what} must be a short printable identifier")
    return value


def _route(value: str | None) -> str | None:
    """A route template such as `GET /customers/{id}`; query strings are never recorded."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 300 or not _ROUTE.match(value) or "?" in value:
        raise ValueError("route must be 'METHOD /template' without a query string")
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    """Bodies hold JSON without floats, so canonical bytes are stable (RFC 8785 subset)."""
    if depth > 8:
        raise ValueError("audit detail nested too deeply")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise ValueError("audit integers must fit in an IEEE double")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_json(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise ValueError("audit detail keys must be ASCII strings")
            _check_json(item, depth + 1)
        return
    raise ValueError(f"audit detail cannot hold {type(value).__name__} values")


def _personal(ip: str | None, username: str | None, user_agent: str | None) -> dict[str, str]:
    values = {"ip": ip, "username": username, "user_agent": user_agent}
    return {k: v[:1024] for k, v in values.items() if isinstance(v, str) and v}


def _event(
    kind: str,
    class_uid: int,
    activity_id: int,
    detail: dict[str, Any],
    *,
    time: datetime | None,
    severity_id: int = SEVERITY_INFORMATIONAL,
    status: str | None = None,
    subject: str | None = None,
    principal: str | None = None,
    personal: dict[str, str] | None = None,
) -> AuditEvent:
    if len(kind) > MAX_KIND:
        raise ValueError(f"event kind is longer than {MAX_KIND} characters")
    clean = {k: v for k, v in detail.items() if v is not None}
    _check_json(clean)
    when = time or datetime.now(UTC)
    format_time(when)
    return AuditEvent(
        kind=kind,
        class_uid=class_uid,
        activity_id=activity_id,
        time=when.astimezone(UTC),
        uid=new_uid(),
        detail=clean,
        severity_id=severity_id,
        status=status,
        subject=_identifier(subject, "subject"),
        principal=_identifier(principal, "principal"),
        personal=personal or {},
    )


def login_attempt(
    *,
    success: bool,
    subject: str | None = None,
    username: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    device: str | None = None,
    reason: str | None = None,
    route: str | None = None,
    protocol: str = "password",
    time: datetime | None = None,
) -> AuditEvent:
    """Authentication 3002 / Logon. `reason` is a status detail such as INVALID_CREDENTIALS."""
    if reason is not None and not re.fullmatch(r"[A-Z][A-Z_]{1,40}", reason):
        raise ValueError("reason must be an upper-case status detail")
    return _event(
        "authentication.logon",
        AUTHENTICATION,
        1,
        {
            "auth_protocol": _name(protocol, "protocol"),
            "status_detail": reason,
            "route": _route(route),
            "device": _identifier(device, "device"),
            "network": network_hint(ip),
        },
        time=time,
        status="success" if success else "failure",
        severity_id=SEVERITY_INFORMATIONAL if success else SEVERITY_LOW,
        subject=subject,
        principal=subject,
        personal=_personal(ip, username, user_agent),
    )


def logout(
    *, subject: str, ip: str | None = None, route: str | None = None, time: datetime | None = None
) -> AuditEvent:
    """Authentication 3002 / Logoff."""
    return _event(
        "authentication.logoff",
        AUTHENTICATION,
        2,
        {"route": _route(route), "network": network_hint(ip)},
        time=time,
        status="success",
        subject=subject,
        principal=subject,
        personal=_personal(ip, None, None),
    )


_ACCOUNT_ACTIVITIES = {
    "account_creation": 1,
    "password_change": 3,
    "email_change": 99,
    "account_closure": 6,
    "lock": 9,
    "unlock": 12,
}


def account_change(
    change: str,
    *,
    subject: str,
    principal: str | None = None,
    ip: str | None = None,
    reason: str | None = None,
    time: datetime | None = None,
) -> AuditEvent:
    """Account Change 3001: password change, e-mail change, account closure, lock, unlock."""
    if change not in _ACCOUNT_ACTIVITIES:
        raise ValueError(f"unknown account change; expected one of {sorted(_ACCOUNT_ACTIVITIES)}")
    return _event(
        f"account_change.{change}",
        ACCOUNT_CHANGE,
        _ACCOUNT_ACTIVITIES[change],
        {
            "activity_name": change,
            "reason": _name(reason, "reason") if reason else None,
            "network": network_hint(ip),
        },
        time=time,
        status="success",
        subject=subject,
        principal=principal or subject,
        personal=_personal(ip, None, None),
    )


_ACCESS_ACTIONS = {"read": 2, "reveal": 2, "disclose": 2, "export": 2, "erase": 4}


def data_access(
    *,
    principal: str,
    subject: str | None = None,
    categories: Iterable[str],
    purpose: str,
    route: str | None = None,
    recipient: str | None = None,
    action: str = "reveal",
    fields: Iterable[str] = (),
    record_count: int = 1,
    decision: str = "allowed",
    promise: str | None = None,
    ip: str | None = None,
    time: datetime | None = None,
    subjects: Iterable[str] | None = None,
) -> AuditEvent:
    """API Activity 6003: who saw which categories of whose data, why, on which route. Never values.

    One disclosure of many records is one event: `subjects` lists them (sorted, `record_count` is
    their number) instead of `subject`; the log indexes them so each subject's access log finds it."""
    listed = None
    if subjects is not None:
        if subject is not None or isinstance(subjects, str):
            raise ValueError("give either subject or a list of subjects")
        listed = sorted({str(_identifier(s, "subject")) for s in subjects})
        if not listed:
            raise ValueError("a data access names at least one subject")
        if len(listed) == 1:
            subject, listed = listed[0], None
        else:
            record_count = len(listed)
    elif subject is None:
        raise ValueError("a data access names its subject")
    if action not in _ACCESS_ACTIONS:
        raise ValueError(f"unknown data access action; expected one of {sorted(_ACCESS_ACTIONS)}")
    if not isinstance(record_count, int) or record_count < 0:
        raise ValueError("record_count must be a non-negative integer")
    cats = _names(categories, "category")
    if not cats:
        raise ValueError("a data access names at least one category")
    return _event(
        f"api_activity.data_{action}",
        API_ACTIVITY,
        _ACCESS_ACTIONS[action],
        {
            "categories": cats,
            "purpose": _name(purpose, "purpose"),
            "recipient": _name(recipient, "recipient") if recipient else None,
            "route": _route(route),
            "fields": [_field_name(f) for f in fields],
            "record_count": record_count,
            "decision": _name(decision, "decision"),
            "promise": _name(promise, "promise") if promise else None,
            "network": network_hint(ip),
            "subjects": listed,
        },
        time=time,
        status="success" if decision == "allowed" else "failure",
        subject=subject,
        principal=principal,
    )


def would_have(
    *,
    capability: str,
    decision: str,
    route: str,
    code: str | None = None,
    fields: Iterable[str] = (),
    recipient: str | None = None,
    principal: str | None = None,
    ip: str | None = None,
    time: datetime | None = None,
) -> AuditEvent:
    """API Activity 6003 (other): what enforcement would have done on a route in report mode.

    Field paths whose keys are not plain names are shown as `[?]`: a key may itself be personal."""
    shown = [f if _FIELD_RE.fullmatch(f) else "[?]" for f in fields]
    return _event(
        "api_activity.would_have",
        API_ACTIVITY,
        99,
        {
            "capability": _name(capability, "capability"),
            "decision": _name(decision, "decision"),
            "code": _name(code, "code") if code else None,
            "route": _route(route),
            "fields": shown,
            "recipient": _name(recipient, "recipient") if recipient else None,
            "mode": "report",
            "network": network_hint(ip),
        },
        time=time,
        status="success",
        principal=principal,
    )


_FIELD_RE = re.compile(r"[A-Za-z0-9_$.\[\]*-]{1,120}")


def _field_name(value: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_$.\[\]*-]{1,120}", value):
        raise ValueError("fields are selector names, not values")
    return value


def consent_change(
    *,
    subject: str,
    purposes_granted: Iterable[str] = (),
    purposes_denied: Iterable[str] = (),
    source: str = "api",
    policy_version: str | None = None,
    principal: str | None = None,
    time: datetime | None = None,
) -> AuditEvent:
    """API Activity 6003 / Update: a subject's consent decision changed."""
    return _event(
        "api_activity.consent_change",
        API_ACTIVITY,
        3,
        {
            "granted": _names(purposes_granted, "purpose"),
            "denied": _names(purposes_denied, "purpose"),
            "source": _name(source, "source"),
            "policy_version": policy_version,
        },
        time=time,
        status="success",
        subject=subject,
        principal=principal or subject,
    )


def subject_request(
    *,
    subject: str,
    request: str,
    state: str,
    request_id: str,
    principal: str | None = None,
    categories: Iterable[str] = (),
    time: datetime | None = None,
) -> AuditEvent:
    """API Activity 6003: a data-subject request (access, erasure, ...) changed state."""
    return _event(
        f"api_activity.subject_request_{_name(request, 'request')}",
        API_ACTIVITY,
        99,
        {
            "request": request,
            "state": _name(state, "state"),
            "request_id": _identifier(request_id, "request_id"),
            "categories": _names(categories, "category"),
        },
        time=time,
        status="success",
        subject=subject,
        principal=principal or subject,
    )


def key_operation(
    *,
    operation: str,
    key_id: str,
    principal: str,
    subject: str | None = None,
    outcome: str = "success",
    time: datetime | None = None,
) -> AuditEvent:
    """API Activity 6003 / Other: key created, rotated, rewrapped or shredded (ids only)."""
    return _event(
        f"api_activity.key_{_name(operation, 'operation')}",
        API_ACTIVITY,
        99,
        {"operation": operation, "key_id": _identifier(key_id, "key_id")},
        time=time,
        status=_outcome(outcome),
        severity_id=SEVERITY_MEDIUM,
        subject=subject,
        principal=principal,
    )


def admin_read(
    *,
    principal: str,
    query: Mapping[str, str | int | None],
    result_count: int,
    subject: str | None = None,
    time: datetime | None = None,
) -> AuditEvent:
    """API Activity 6003 / Read: somebody read the audit trail itself (reads of the log are audited)."""
    shown = {str(k): v for k, v in query.items() if v is not None}
    return _event(
        "api_activity.admin_read",
        API_ACTIVITY,
        2,
        {"query": shown, "result_count": result_count},
        time=time,
        status="success",
        severity_id=SEVERITY_LOW,
        subject=subject,
        principal=principal,
    )


def detection_finding(
    finding: str,
    *,
    title: str,
    subject: str | None = None,
    severity_id: int = SEVERITY_MEDIUM,
    related: Mapping[str, Any] | None = None,
    ip: str | None = None,
    username: str | None = None,
    time: datetime | None = None,
) -> AuditEvent:
    """Detection Finding 2004: suspicious login, lockout, tampering detected, dropped events."""
    return _event(
        f"detection_finding.{_name(finding, 'finding')}",
        DETECTION_FINDING,
        1,
        {"finding": finding, "title": title, "related": dict(related or {}), "network": network_hint(ip)},
        time=time,
        severity_id=severity_id,
        subject=subject,
        personal=_personal(ip, username, None),
    )


def containment(
    action: str,
    *,
    target_kind: str,
    target: str,
    principal: str,
    reason: str,
    finding_uid: str | None = None,
    time: datetime | None = None,
) -> AuditEvent:
    """API Activity 6003 / Other: a principal's or recipient's access suspended or restored."""
    if action not in {"suspend", "lift"}:
        raise ValueError("containment action must be suspend or lift")
    if target_kind not in {"principal", "recipient"}:
        raise ValueError("containment target must be a principal or a recipient")
    return _event(
        f"api_activity.containment_{action}",
        API_ACTIVITY,
        99,
        {
            "target_kind": target_kind,
            "target": _identifier(target, "target"),
            "reason": reason[:200],
            "finding_uid": _identifier(finding_uid, "finding_uid"),
        },
        time=time,
        status="success",
        severity_id=SEVERITY_HIGH if action == "suspend" else SEVERITY_MEDIUM,
        principal=principal,
    )


def events_dropped(count: int, *, time: datetime | None = None) -> AuditEvent:
    """The counted gap: how many events a bound forced the writer to drop."""
    return detection_finding(
        "events_dropped",
        title="audit events dropped",
        severity_id=SEVERITY_HIGH,
        related={"count": count},
        time=time,
    )


LIFECYCLE = ("start", "stop", "heartbeat", "key_rotation", "retention_purge", "retention_drop", "spool_corrupt")


def lifecycle(stage: str, *, time: datetime | None = None, **detail: Any) -> AuditEvent:
    """A log lifecycle leaf (start, stop, heartbeat, key rotation, retention purge)."""
    if stage not in LIFECYCLE:
        raise ValueError(f"unknown lifecycle stage; expected one of {LIFECYCLE}")
    return _event(f"log.{stage}", BASE_EVENT, 99, dict(detail), time=time)


def _outcome(value: str) -> str:
    if value not in {"success", "failure"}:
        raise ValueError("outcome must be success or failure")
    return value


__all__ = [
    "API_ACTIVITY",
    "AUTHENTICATION",
    "AuditEvent",
    "account_change",
    "admin_read",
    "consent_change",
    "containment",
    "data_access",
    "detection_finding",
    "events_dropped",
    "key_operation",
    "lifecycle",
    "login_attempt",
    "logout",
    "network_hint",
    "subject_request",
    "would_have",
]
