"""The privacy API mounted under PRIVACY_MOUNT_PATH (Starlette): every /privacy/* route is assembled
here from the built services, plus the root-level GPC support resource."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount, Route

from ..errors import PrivacyError
from ..integrations.receivers import configured_receivers
from ..rights.platform_requests import PlatformRequests
from ..services import Services
from .audit import audit_routes
from .breach import breach_routes
from .common import problem_handler
from .consent import consent_routes, gpc_routes
from .ocsf import ocsf_routes
from .pages import page_routes
from .policy import policy_routes
from .rights import rights_routes
from .webhooks import webhook_routes


def privacy_routes(services: Services, platform: PlatformRequests | None) -> list[BaseRoute]:
    """The routes under the mount path, in matching order."""
    settings = services.settings
    routes: list[BaseRoute] = [
        *policy_routes(services.policy, services.database),
        *consent_routes(
            services.consent,
            allowed_origins=settings.consent.allowed_origins,
            cookie_domains=settings.consent.cookie_domains,
        ),
        *audit_routes(services.policy, services.database, services.audit),
        *breach_routes(services.policy, services.breach),
        *ocsf_routes(services.policy, services.database, services.audit),
    ]
    if services.rights is not None:
        routes.extend(rights_routes(services.rights))
    if services.guests is not None:
        from .guests import guest_routes

        routes.extend(guest_routes(services.guests))
    if platform is not None:
        receivers = configured_receivers(settings.webhooks, services.http)
        if receivers:
            routes.extend(webhook_routes(services.database, platform.submit, receivers, on_rejected=platform.rejected))
    routes.extend(page_routes(services))
    return routes


def build_api(services: Services, platform: PlatformRequests | None = None) -> Starlette:
    mount = services.settings.mount_path
    routes = privacy_routes(services, platform)
    served: list[BaseRoute] = [*gpc_routes(services.policy.policy.effective_date)]
    routes.append(openapi_route(served, mount))  # describes `served` as completed on the next line
    served.append(Mount(mount, routes=routes))
    return Starlette(
        routes=served,
        exception_handlers={
            PrivacyError: problem_handler,
            HTTPException: problem_handler,
            Exception: problem_handler,
        },
    )


def openapi_route(served: list[BaseRoute], mount: str) -> Route:
    """`<mount>/openapi.json`: the OpenAPI 3.1 description generated from the served routes."""
    from starlette.requests import Request
    from starlette.responses import Response

    from .openapi import openapi_document

    cached: list[bytes] = []

    async def openapi(request: Request) -> Response:
        if not cached:
            cached.append(orjson.dumps(openapi_document(served, mount)))
        return Response(cached[0], media_type="application/json", headers={"cache-control": "public, max-age=300"})

    return Route("/openapi.json", openapi, methods=["GET"])
