"""Officer endpoints for breach response: list and lift suspensions, read recent findings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .common import JSONResponse, require_scope

if TYPE_CHECKING:
    from ..breach.service import BreachService
    from ..policy.schema import Policy


def breach_routes(policy: Policy, service: BreachService) -> list[Route]:
    admin_scope = policy.audit.admin_scope

    async def list_suspensions(request: Request) -> Response:
        require_scope(request, admin_scope)
        include_lifted = request.query_params.get("all") in {"1", "true"}
        rows = await service.suspensions.list(include_lifted=include_lifted)
        return JSONResponse(
            {
                "suspensions": [
                    {
                        "target_kind": row.target_kind,
                        "target": row.target,
                        "reason": row.reason,
                        "finding": row.finding_uid,
                        "since_us": row.since_us,
                        "lifted_us": row.lifted_us,
                        "lifted_by": row.lifted_by,
                    }
                    for row in rows
                ]
            },
            headers={"cache-control": "no-store"},
        )

    async def lift(request: Request) -> Response:
        principal = require_scope(request, admin_scope)
        kind = request.path_params["kind"]
        target = request.path_params["target"]
        lifted = await service.suspensions.lift(kind, target, by=principal.id)
        service.monitor.dedup.forget([f"{kind}:{target}"])
        if not lifted.rows:
            return JSONResponse({"lifted": 0, "detail": "no active suspension for this target"}, status_code=404)
        return JSONResponse({"lifted": lifted.rows, "target_kind": kind, "target": target})

    return [
        Route("/admin/breach/suspensions", list_suspensions, methods=["GET"]),
        Route("/admin/breach/suspensions/{kind}/{target}", lift, methods=["DELETE"]),
    ]
