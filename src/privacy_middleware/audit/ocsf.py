"""Security events of the audit trail as OCSF 1.3 documents, pulled incrementally by a SIEM.

Logins (Authentication 3002), account changes and lockouts (Account Change 3001), data access,
consent changes and subject requests such as erasures (API Activity 6003), and detections
(Detection Finding 2004). Lifecycle records of the log itself are not security events and are
skipped. A document carries identifiers, categories and coarse networks, never a raw IP, a
username or a personal value (those stay in the trail's encrypted side records). The cursor is the
trail's sequence number (`metadata.sequence`): pull with `after=<cursor>` to get what is new.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import __version__
from .events import ACCOUNT_CHANGE, API_ACTIVITY, AUTHENTICATION, DETECTION_FINDING
from .query import AuditRecord

OCSF_VERSION = "1.3.0"
SECURITY_CLASSES = (AUTHENTICATION, ACCOUNT_CHANGE, API_ACTIVITY, DETECTION_FINDING)
PRODUCT = {"name": "privacy-middleware", "vendor_name": "privacy-middleware", "version": __version__}
_STATUS_IDS = {"success": 1, "failure": 2}
# OCSF auth_protocol_id: our sign-ins are passwords or bearer tokens (OAuth 2.0).
_AUTH_PROTOCOLS = {"password": 99, "oauth2": 6, "jwt": 6, "session": 99}
_UNKNOWN_USER = {"name": "unidentified", "type_id": 0}


def security_kinds() -> list[str]:
    """Event kinds (prefixes) that are security events, for the trail query."""
    return ["authentication.*", "account_change.*", "api_activity.*", "detection_finding.*"]


def _user(uid: str | None) -> dict[str, Any]:
    return {"uid": uid} if uid else dict(_UNKNOWN_USER)


def _endpoint(network: Any) -> dict[str, Any]:
    # The coarse network the trail keeps (e.g. "198.51.100.0/24"), never the client's address.
    return {"name": str(network)} if network else {"name": "unknown network"}


def to_ocsf(record: AuditRecord) -> dict[str, Any] | None:
    """The OCSF document of one trail record, or None for non-security or purged records."""
    document = record.document
    if document is None or record.class_uid not in SECURITY_CLASSES:
        return None
    detail: dict[str, Any] = dict(document.get("detail") or {})
    status = document.get("status")
    activity_id = int(document["activity_id"])
    event: dict[str, Any] = {
        "class_uid": record.class_uid,
        "category_uid": record.class_uid // 1000,
        "activity_id": activity_id,
        "type_uid": record.class_uid * 100 + activity_id,
        "time": int(record.time.timestamp() * 1000),
        "severity_id": int(document.get("severity_id") or 1),
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": document.get("uid"),
            "log_name": "privacy-audit",
            "sequence": record.seq,
            "event_code": record.kind,
        },
        "message": record.kind.replace("_", " ").replace(".", ": ", 1),
    }
    if status in _STATUS_IDS and record.class_uid != DETECTION_FINDING:  # a finding's status_id means workflow
        event["status"] = status.capitalize()
        event["status_id"] = _STATUS_IDS[status]
    network = detail.pop("network", None)
    unmapped: dict[str, Any] = {}
    if record.class_uid == AUTHENTICATION:
        event["user"] = _user(record.subject)
        protocol = detail.pop("auth_protocol", None)
        if protocol:
            event["auth_protocol"] = protocol
            event["auth_protocol_id"] = _AUTH_PROTOCOLS.get(protocol, 99)
        if detail.get("status_detail"):
            event["status_detail"] = detail.pop("status_detail")
        event["src_endpoint"] = _endpoint(network)
        event["is_remote"] = True
    elif record.class_uid == ACCOUNT_CHANGE:
        event["user"] = _user(record.subject)
        event["actor"] = {"user": _user(record.principal or record.subject)}
        event["src_endpoint"] = _endpoint(network)
    elif record.class_uid == API_ACTIVITY:
        operation = record.kind.partition(".")[2] or record.kind
        event["actor"] = {"user": _user(record.principal)}
        event["api"] = {"operation": operation, "service": {"name": "privacy-middleware"}}
        event["src_endpoint"] = _endpoint(network)
        if record.subject:
            resource: dict[str, Any] = {"uid": record.subject, "type": "data_subject"}
            categories = detail.get("categories")
            if categories:
                resource["data"] = {"categories": categories}
            event["resources"] = [resource]
    else:  # DETECTION_FINDING
        event["finding_info"] = {
            "uid": document.get("uid"),
            "title": detail.pop("title", record.kind),
            "types": [detail.pop("finding", record.kind)],
        }
        if record.subject:
            event["resources"] = [{"uid": record.subject, "type": "data_subject"}]
        if network:
            unmapped["network"] = network
    unmapped.update({k: v for k, v in detail.items() if v not in (None, [], {})})
    if unmapped:
        event["unmapped"] = unmapped
    return event


def to_ocsf_batch(records: Iterable[AuditRecord]) -> tuple[list[dict[str, Any]], int | None]:
    """OCSF documents of the security records, and the cursor after the last record read."""
    documents = []
    last: int | None = None
    for record in records:
        last = record.seq
        converted = to_ocsf(record)
        if converted is not None:
            documents.append(converted)
    return documents, last
