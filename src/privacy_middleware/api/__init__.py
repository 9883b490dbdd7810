"""The privacy API mounted under PRIVACY_MOUNT_PATH (Starlette). Capabilities add their routes here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount

from ..errors import PrivacyError
from .common import problem_handler
from .pages import page_routes
from .policy import policy_routes

if TYPE_CHECKING:
    from ..runtime import Runtime


def build_api(runtime: Runtime) -> Starlette:
    routes: list[BaseRoute] = [*policy_routes(runtime), *runtime.api_routes, *page_routes(runtime)]
    app = Starlette(
        routes=[*runtime.root_routes, Mount(runtime.settings.mount_path, routes=routes)],
        exception_handlers={
            PrivacyError: problem_handler,
            HTTPException: problem_handler,
            Exception: problem_handler,
        },
    )
    return app
