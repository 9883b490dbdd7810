"""Shared helpers for API handlers: problem+json errors, the caller's context, JSON responses."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..context import Principal, RequestContext, get_context
from ..errors import PROBLEM_CONTENT_TYPE, PrivacyError

logger = logging.getLogger("privacy_middleware.api")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem_response(error: PrivacyError) -> Response:
    return Response(
        orjson.dumps(error.problem()),
        status_code=error.status,
        media_type=PROBLEM_CONTENT_TYPE.decode(),
        headers={"cache-control": "no-store", **error.headers},
    )


async def problem_handler(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PrivacyError):
        return problem_response(exc)
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem_response(PrivacyError(code, str(exc.detail), exc.status_code))
    logger.error("privacy API error: %s", type(exc).__name__)
    return problem_response(PrivacyError("internal_error", "The privacy service failed.", 500))


def context(request: Request) -> RequestContext:
    ctx = get_context(request.scope)
    if ctx is None:  # only when the API is called without the middleware in front
        raise PrivacyError("no_context", "The privacy API must be reached through the middleware.", 500)
    return ctx


def require_principal(request: Request) -> Principal:
    principal = context(request).principal
    if principal is None:
        raise PrivacyError(
            "authentication_required",
            "Sign in: this endpoint needs a bearer token.",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def require_scope(request: Request, scope: str) -> Principal:
    principal = require_principal(request)
    if not principal.has_scope(scope):
        raise PrivacyError("forbidden", f"This endpoint needs the {scope!r} scope.", 403)
    return principal


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PrivacyError("malformed_json", "The request body is not valid JSON.", 400) from None
