"""`GET <mount>/admin/audit/ocsf?after=<cursor>`: security events as OCSF documents for a SIEM.

The officer's pull is itself recorded (no record, no answer). The answer's `cursor` goes into the
next pull's `after`; `more` says whether a full page was returned (pull again at once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..audit import events
from ..audit.ocsf import OCSF_VERSION, security_kinds, to_ocsf_batch
from ..audit.query import MAX_LIMIT, search
from ..errors import PrivacyError
from .common import JSONResponse, require_scope

if TYPE_CHECKING:
    from ..audit.writer import AuditWriter
    from ..policy.schema import Policy
    from ..store.database import Database


def _int(value: str | None, name: str, default: int | None, low: int, high: int) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise PrivacyError("invalid_query", f"{name} must be a whole number.", 400) from None
    if not low <= number <= high:
        raise PrivacyError("invalid_query", f"{name} must be between {low} and {high}.", 400)
    return number


def ocsf_routes(policy: Policy, database: Database, audit: AuditWriter) -> list[Route]:
    admin_scope = policy.audit.admin_scope

    async def pull(request: Request) -> Response:
        principal = require_scope(request, admin_scope)
        after = _int(request.query_params.get("after"), "after", None, 0, 2**63 - 1)
        limit = _int(request.query_params.get("limit"), "limit", 500, 1, MAX_LIMIT) or 500
        records = await search(database, kinds=security_kinds(), after_seq=after, limit=limit)
        documents, last = to_ocsf_batch(records)
        await audit.emit_strict(
            events.admin_read(
                principal=principal.id,
                query={"export": "ocsf", "after": after, "limit": limit},
                result_count=len(documents),
            )
        )
        return JSONResponse(
            {
                "ocsf_version": OCSF_VERSION,
                "events": documents,
                "cursor": last if last is not None else after,
                "more": len(records) == limit,
            },
            headers={"cache-control": "no-store"},
        )

    return [Route("/admin/audit/ocsf", pull, methods=["GET"])]
