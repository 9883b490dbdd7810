"""GET /policy (machine-readable policy, version and history) and GET /health."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import ConfigError, PrivacyError
from ..policy.load import policy_digest, policy_document
from ..policy.schema import Policy
from ..store.database import Database
from ..store.policies import policy_history
from .common import JSONResponse, problem_response


def policy_routes(policy: Policy, database: Database) -> list[Route]:
    document = policy_document(policy)
    digest = policy_digest(policy)

    async def get_policy(request: Request) -> Response:
        return JSONResponse(
            {
                "version": policy.policy.version,
                "effective_date": policy.policy.effective_date.isoformat(),
                "digest": digest,
                "policy": document,
                "history": await policy_history(database),
            },
            headers={"cache-control": "public, max-age=60", "etag": f'"{digest[:32]}"'},
        )

    async def health(request: Request) -> Response:
        try:
            await database.check()
        except ConfigError:
            return problem_response(PrivacyError("store_unavailable", "The privacy store is unreachable.", 503))
        return JSONResponse({"status": "ok", "policy_version": policy.policy.version})

    return [Route("/policy", get_policy, methods=["GET"]), Route("/health", health, methods=["GET"])]
