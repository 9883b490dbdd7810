"""Guest rights by e-mail: ask for a one-time code, trade it for a guest session.

`POST <mount>/guest/code {"email"}` always answers 202 when the code was sent (whether or not the
address placed an order, so the answer reveals nothing), 429 when rate-limited. `POST
<mount>/guest/session {"email", "code"}` answers a bearer token the rights API (`/me/export`,
`/me/erasure`, ...) accepts like a customer's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..context import get_context
from ..errors import PrivacyError
from ..guests.service import GuestService
from .common import JSONResponse, json_body

NO_STORE = {"cache-control": "no-store"}


async def _object(request: Request) -> dict[str, object]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise PrivacyError("invalid_body", "The request body must be a JSON object.", 422)
    return body


def guest_routes(service: GuestService) -> list[Route]:
    async def code(request: Request) -> Response:
        body = await _object(request)
        ctx = get_context(request.scope)
        await service.send_code(body.get("email"), ctx.client_ip if ctx else None)
        return JSONResponse({"sent": True, "valid_minutes": service.settings.code_minutes}, 202, headers=NO_STORE)

    async def session(request: Request) -> Response:
        body = await _object(request)
        ctx = get_context(request.scope)
        token, _ = await service.verify_code(body.get("email"), body.get("code"), ctx.client_ip if ctx else None)
        return JSONResponse(
            {"token": token, "token_type": "Bearer", "expires_in": int(service.settings.session_minutes * 60)},
            headers=NO_STORE,
        )

    return [Route("/guest/code", code, methods=["POST"]), Route("/guest/session", session, methods=["POST"])]
