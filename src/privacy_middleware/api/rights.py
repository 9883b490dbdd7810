"""The data-subject rights API under the mount path: export, transfer, erasure, rectification,
restriction, objection, the subject's own requests and the admin's overdue-first list.

A signed-in customer acts for themself. An admin (the policy's `audit.admin_scope`) may act for a
subject by naming it (`subject`) with a `reason`; anyone else naming another subject gets 403 and
the attempt is audited.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import PrivacyError
from ..rights.service import RightsService
from ..store.rights import OPEN_STATUSES, RightsRequest
from .common import JSONResponse, json_body, require_principal, require_scope

NO_STORE = {"cache-control": "no-store"}
STATUSES = frozenset({*OPEN_STATUSES, "completed", "failed", "rejected"})


def _text(value: Any, what: str, *, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or not value.isprintable():
        raise PrivacyError(f"invalid_{what}", f"The {what} must be a short printable text.", 422)
    return value.strip()


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get("idempotency-key")
    return None if value is None else _text(value, "idempotency_key", limit=200)


async def _object_body(request: Request) -> dict[str, Any]:
    if not await request.body():
        return {}
    body = await json_body(request)
    if not isinstance(body, dict):
        raise PrivacyError("invalid_body", "The request body must be a JSON object.", 422)
    return body


def _request_json(request: RightsRequest) -> dict[str, Any]:
    return request.to_json()


class RightsAPI:
    def __init__(self, service: RightsService) -> None:
        self.service = service
        self.admin_scope = service.policy.audit.admin_scope

    def acting(self, request: Request, kind: str, named: Any, reason: Any) -> tuple[str, str, str | None]:
        """(subject, acting principal, reason): the caller themself, or an admin for someone."""
        principal = require_principal(request)
        admin = principal.has_scope(self.admin_scope)
        if named is None or (principal.subject is not None and named == principal.subject):
            if principal.subject is None:
                if admin:
                    raise PrivacyError("subject_required", "Name the subject this request is for.", 422)
                raise PrivacyError("forbidden", "Only a signed-in customer can make this request.", 403)
            return principal.subject, principal.id, None
        subject = _text(named, "subject", limit=200)
        if not admin:
            self.service.denied(kind=kind, subject=subject, principal=principal.id)
            raise PrivacyError("forbidden", "You can only make requests about your own data.", 403)
        return (
            subject,
            principal.id,
            _text(reason, "reason", limit=500) if reason is not None else _reason_missing(),
        )

    async def export(self, request: Request) -> Response:
        subject, principal, reason = self.acting(
            request, "access", request.query_params.get("subject"), request.query_params.get("reason")
        )
        done, document = await self.service.export(
            subject, principal=principal, reason=reason, idempotency_key=_idempotency_key(request)
        )
        headers = {
            **NO_STORE,
            "x-privacy-request-id": done.id,
            "content-disposition": 'attachment; filename="personal-data.json"',
        }
        return JSONResponse(document, headers=headers)

    async def transfer(self, request: Request) -> Response:
        body = await _object_body(request)
        subject, principal, reason = self.acting(request, "transfer", body.get("subject"), body.get("reason"))
        done = await self.service.transfer(
            subject,
            body.get("url"),
            principal=principal,
            reason=reason,
            idempotency_key=_idempotency_key(request),
        )
        if done.status == "failed":
            raise PrivacyError(
                "transfer_failed",
                "The receiving provider could not be reached; your export is kept.",
                502,
                extra={
                    "request": _request_json(done),
                    "export": f"{request.scope.get('root_path', '')}/me/requests/{done.id}/export",
                },
            )
        return JSONResponse(_request_json(done), status_code=200, headers=NO_STORE)

    async def kept_export(self, request: Request) -> Response:
        found = await self.service.get(request.path_params["request_id"])
        principal = require_principal(request)
        admin = principal.has_scope(self.admin_scope)
        if found is not None and not admin and found.subject != principal.subject:
            self.service.denied(kind="transfer", subject=found.subject, principal=principal.id)
            found = None
        if found is None:
            raise PrivacyError("not_found", "No such request.", 404)
        document = await self.service.kept_export(found)
        if document is None:
            raise PrivacyError("not_found", "No export is kept for this request.", 404)
        return JSONResponse(document, headers={**NO_STORE, "x-privacy-request-id": found.id})

    async def erasure(self, request: Request) -> Response:
        body = await _object_body(request)
        subject, principal, reason = self.acting(request, "erasure", body.get("subject"), body.get("reason"))
        done = await self.service.erase(
            subject, principal=principal, reason=reason, idempotency_key=_idempotency_key(request)
        )
        payload = _request_json(done)
        if done.status == "completed":
            payload["receipt"] = (done.result or {}).get("receipt")
            return JSONResponse(payload, headers=NO_STORE)
        return JSONResponse(payload, status_code=202, headers=NO_STORE)

    async def rectification(self, request: Request) -> Response:
        body = await _object_body(request)
        subject, principal, reason = self.acting(request, "rectification", body.get("subject"), body.get("reason"))
        done = await self.service.rectify(
            subject,
            body.get("changes"),
            principal=principal,
            reason=reason,
            idempotency_key=_idempotency_key(request),
        )
        return JSONResponse(_request_json(done), headers=NO_STORE)

    async def restriction(self, request: Request) -> Response:
        body = await _object_body(request)
        subject, principal, reason = self.acting(request, "restriction", body.get("subject"), body.get("reason"))
        done, flags = await self.service.set_restriction(
            subject, request.method == "POST", principal=principal, reason=reason
        )
        return JSONResponse({"request": _request_json(done), "flags": flags.to_json()}, headers=NO_STORE)

    async def objection(self, request: Request) -> Response:
        body = await _object_body(request)
        subject, principal, reason = self.acting(request, "objection", body.get("subject"), body.get("reason"))
        done, flags = await self.service.object_to(
            subject,
            body.get("purposes"),
            principal=principal,
            reason=reason,
            withdraw=request.method == "DELETE",
        )
        return JSONResponse({"request": _request_json(done), "flags": flags.to_json()}, headers=NO_STORE)

    async def my_requests(self, request: Request) -> Response:
        subject, _, _ = self.acting(
            request, "listing", request.query_params.get("subject"), request.query_params.get("reason")
        )
        found = await self.service.requests_of(subject)
        flags = await self.service.flags.get(subject)
        return JSONResponse(
            {"subject": subject, "requests": [_request_json(r) for r in found], "flags": flags.to_json()},
            headers=NO_STORE,
        )

    async def admin_requests(self, request: Request) -> Response:
        require_scope(request, self.admin_scope)
        wanted = [s for s in request.query_params.getlist("status") if s]
        if any(s not in STATUSES for s in wanted):
            raise PrivacyError("invalid_status", f"status must be one of {sorted(STATUSES)}.", 422)
        found = await self.service.repository.listing(status=wanted or None)
        return JSONResponse(
            {"requests": [_request_json(r) for r in found], "overdue": sum(1 for r in found if r.overdue())},
            headers=NO_STORE,
        )

    async def receipt_key(self, request: Request) -> Response:
        return Response(self.service.signer.public_key_pem(), media_type="application/x-pem-file")


def _reason_missing() -> str:
    raise PrivacyError("reason_required", "An admin acting for a subject must give a reason.", 422)


def rights_routes(service: RightsService) -> list[Route]:
    """Routes relative to the privacy mount (e.g. /privacy/me/export)."""
    api = RightsAPI(service)
    return [
        Route("/me/export", api.export, methods=["GET"]),
        Route("/me/export/transfer", api.transfer, methods=["POST"]),
        Route("/me/requests/{request_id}/export", api.kept_export, methods=["GET"]),
        Route("/me/erasure", api.erasure, methods=["POST"]),
        Route("/me/rectification", api.rectification, methods=["POST"]),
        Route("/me/restriction", api.restriction, methods=["POST", "DELETE"]),
        Route("/me/objection", api.objection, methods=["POST", "DELETE"]),
        Route("/me/requests", api.my_requests, methods=["GET"]),
        Route("/admin/requests", api.admin_requests, methods=["GET"]),
        Route("/rights/receipt-key", api.receipt_key, methods=["GET"]),
    ]
