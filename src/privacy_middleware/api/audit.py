"""Audit queries: an admin's search of the trail (itself audited, strictly) and a subject's own
access log (their sign-ins by network, and who received which categories of their data, for what)."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..audit import events
from ..audit.query import MAX_LIMIT, access_log, search
from ..audit.writer import AuditWriter
from ..errors import PrivacyError
from ..policy.schema import Policy
from ..store.database import Database
from .common import JSONResponse, require_principal, require_scope


def _time(value: str | None, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise PrivacyError("invalid_query", f"{name} must be an ISO 8601 time.", 400) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def audit_routes(policy: Policy, database: Database, audit: AuditWriter) -> list[Route]:
    admin_scope = policy.audit.admin_scope

    async def admin_events(request: Request) -> Response:
        principal = require_scope(request, admin_scope)
        params = request.query_params
        try:
            limit = int(params.get("limit", "100"))
        except ValueError:
            raise PrivacyError("invalid_query", "limit must be a number.", 400) from None
        if not 1 <= limit <= MAX_LIMIT:
            raise PrivacyError("invalid_query", f"limit must be between 1 and {MAX_LIMIT}.", 400)
        kinds = [k for k in params.get("kind", "").split(",") if k] or None
        subject = params.get("subject") or None
        records = await search(
            database,
            subject=subject,
            kinds=kinds,
            since=_time(params.get("since"), "since"),
            until=_time(params.get("until"), "until"),
            limit=limit,
        )
        # Reading the trail is itself recorded, and must be: no record, no answer.
        await audit.emit_strict(
            events.admin_read(
                principal=principal.id,
                query={"subject": subject, "kind": params.get("kind"), "limit": limit},
                result_count=len(records),
                subject=subject,
            )
        )
        return JSONResponse(
            {
                "events": [
                    {
                        "seq": r.seq,
                        "time": r.time.isoformat(),
                        "kind": r.kind,
                        "class_uid": r.class_uid,
                        "subject": r.subject,
                        "principal": r.principal,
                        "document": r.document,
                    }
                    for r in records
                ]
            },
            headers={"cache-control": "no-store"},
        )

    async def my_access_log(request: Request) -> Response:
        principal = require_principal(request)
        if not principal.subject:
            raise PrivacyError("forbidden", "Only a signed-in customer has an access log.", 403)
        log = await access_log(database, principal.subject)
        return JSONResponse(
            {
                "subject": log.subject,
                "logins": [
                    {
                        "time": e.time.isoformat(),
                        "outcome": e.outcome,
                        "network": e.network,
                        "device": e.device,
                    }
                    for e in log.logins
                ],
                "disclosures": [
                    {
                        "time": e.time.isoformat(),
                        "recipient": e.recipient,
                        "purpose": e.purpose,
                        "categories": list(e.categories),
                        "route": e.route,
                        "action": e.action,
                    }
                    for e in log.disclosures
                ],
            },
            headers={"cache-control": "no-store"},
        )

    return [
        Route("/admin/audit/events", admin_events, methods=["GET"]),
        Route("/me/access-log", my_access_log, methods=["GET"]),
    ]
