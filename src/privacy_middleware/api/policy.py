"""GET /policy (machine-readable policy, version and history) and GET /health."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import ConfigError, PrivacyError
from ..policy.load import policy_digest, policy_document
from ..store.policies import policy_history
from .common import JSONResponse, problem_response

if TYPE_CHECKING:
    from ..runtime import Runtime


def policy_routes(runtime: Runtime) -> list[Route]:
    document = policy_document(runtime.policy)
    digest = policy_digest(runtime.policy)

    async def get_policy(request: Request) -> Response:
        return JSONResponse(
            {
                "version": runtime.policy.policy.version,
                "effective_date": runtime.policy.policy.effective_date.isoformat(),
                "digest": digest,
                "policy": document,
                "history": await policy_history(runtime.database),
            },
            headers={"cache-control": "public, max-age=60", "etag": f'"{digest[:32]}"'},
        )

    async def health(request: Request) -> Response:
        try:
            await runtime.database.check()
        except ConfigError:
            return problem_response(PrivacyError("store_unavailable", "The privacy store is unreachable.", 503))
        return JSONResponse({"status": "ok", "policy_version": runtime.policy.policy.version})

    return [Route("/policy", get_policy, methods=["GET"]), Route("/health", health, methods=["GET"])]
