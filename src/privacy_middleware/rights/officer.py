"""A privacy officer's actions on a subject request: approve, retry, close.

Each action is a step in the request's history (who, when, why) and an audit event, so the queue
itself shows who decided what. Approving an erasure carries it out at once; retrying resumes an
open or failed erasure from the step where it stopped; closing ends a request the officer decided
not to carry out (status `rejected`, with the officer's reason).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..audit.events import AuditEvent, subject_request
from ..errors import PrivacyError
from ..store.rights import RightsRequest
from .service import RightsService

ACTIONS = ("approve", "retry", "close")


def available_actions(request: RightsRequest) -> list[str]:
    actions = []
    if request.is_open:
        actions.append("approve")
    if request.kind == "erasure" and request.status in ("received", "in_progress", "failed"):
        actions.append("retry")
    if request.is_open or request.status == "failed":
        actions.append("close")
    return actions


class OfficerActions:
    def __init__(self, service: RightsService, record: Callable[[AuditEvent], Awaitable[None]]) -> None:
        """`record` writes an audit event durably (strict): no record, no action."""
        self.service = service
        self.record = record

    async def act(self, request_id: str, action: str, *, officer: str, reason: str) -> RightsRequest:
        request = await self.service.get(request_id)
        if request is None:
            raise PrivacyError("not_found", "No such request.", 404)
        if action not in available_actions(request):
            raise PrivacyError("action_not_available", f"This request cannot be given {action!r} now.", 409)
        detail = {"officer": officer, "reason": reason}
        service = self.service
        await self.record(
            subject_request(
                subject=request.subject,
                request=request.kind,
                state=f"officer_{action}",
                request_id=request.id,
                principal=officer,
            )
        )
        if action == "close":
            return await service._step(request, "closed", "done", status="rejected", detail=detail)
        if action == "approve":
            request = await service._step(request, "approved", "done", status="in_progress", detail=detail)
            if request.kind == "erasure":
                return await service.process_erasure(request)
            return request
        # retry: a failed erasure is reopened first, then resumed where it stopped.
        if request.status == "failed":
            request = await service._step(request, "reopened", "done", status="in_progress", detail=detail)
        return await service.process_erasure(request)
