"""Browser pages served by the privacy API: the shopper privacy centre, the officer console and the
consent banner script. Templates, strings and static files ship inside the package (no front-end
build at install)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...errors import PrivacyError
from .banner import Banner
from .center import Center, CenterServices
from .console import Console, ConsoleServices
from .web import Pages

if TYPE_CHECKING:
    from ...runtime import Runtime

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def static_routes() -> list[BaseRoute]:
    """The pages' own CSS and scripts, read once from the package."""
    files: dict[str, tuple[bytes, str]] = {}
    folder = resources.files(__package__).joinpath("static")
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in STATIC_TYPES:
            files[item.name] = (item.read_bytes(), STATIC_TYPES[suffix])

    async def static(request: Request) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            raise PrivacyError("not_found", "No such file.", 404)
        return Response(
            found[0],
            media_type=found[1],
            headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
        )

    return [Route("/pages/static/{name}", static, methods=["GET"])]


def page_routes(runtime: Runtime) -> list[BaseRoute]:
    settings = runtime.settings
    pages = Pages(
        mount=settings.mount_path,
        verifier=runtime.verifier,
        csrf_key=settings.secret(None, "pages-csrf.key", "privacy pages CSRF key"),
        secure_cookies=settings.consent.secure_cookie,
        allowed_origins=settings.consent.allowed_origins,
    )
    center = Center(
        CenterServices(
            policy=runtime.policy,
            consent=runtime.consent,
            rights=runtime.rights,
            database=runtime.database,
            cookie_domains=tuple(settings.consent.cookie_domains),
            link_visitor=runtime.link_visitor_consent,
            rectifiable=tuple(getattr(runtime.adapter, "rectifiable", ())),
        ),
        pages,
    )
    console = Console(
        ConsoleServices(
            policy=runtime.policy,
            database=runtime.database,
            rights=runtime.rights,
            audit_log=runtime.audit_log,
            record=runtime.audit.emit_strict,
            login_guard=runtime.login_guard,
            tenant=runtime.policy.policy.tenant,
        ),
        pages,
    )
    banner = Banner(runtime.policy, settings.mount_path)
    return [*static_routes(), *center.routes(), *console.routes(), *banner.routes()]
