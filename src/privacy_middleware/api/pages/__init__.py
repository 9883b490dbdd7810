"""Browser pages served by the privacy API: the shopper privacy centre, the officer console and the
consent banner script. Templates, strings and static files ship inside the package (no front-end
build at install)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...consent.linking import link_visitor_consent
from ...errors import PrivacyError
from ...services import Services
from .banner import Banner
from .center import Center, CenterServices
from .console import Console, ConsoleServices
from .web import Pages

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


def page_routes(services: Services) -> list[BaseRoute]:
    settings = services.settings
    adapter = services.rights.adapter if services.rights is not None else None

    async def link_visitor(scope: Any, subject: str) -> None:
        await link_visitor_consent(services.consent, scope.get("headers") or [], subject)

    pages = Pages(
        mount=settings.mount_path,
        verifier=services.verifier,
        identity=services.identity,
        shop_login_url=settings.pages.shop_login_url,
        csrf_key=settings.secret(settings.pages.csrf_secret, "pages-csrf.key", "privacy pages CSRF key"),
        token_cookie=settings.pages.token_cookie,
        guests=services.guests,
        secure_cookies=settings.consent.secure_cookie,
        allowed_origins=settings.consent.allowed_origins,
    )
    center = Center(
        CenterServices(
            policy=services.policy,
            consent=services.consent,
            rights=services.rights,
            database=services.database,
            cookie_domains=tuple(settings.consent.cookie_domains),
            link_visitor=link_visitor,
            rectifiable=tuple(getattr(adapter, "rectifiable", ())),
            guests=services.guests,
        ),
        pages,
    )
    console = Console(
        ConsoleServices(
            policy=services.policy,
            database=services.database,
            rights=services.rights,
            audit_log=services.audit_log,
            record=services.audit.emit_strict,
            login_guard=services.login_guard,
            tenant=services.policy.policy.tenant,
        ),
        pages,
    )
    banner = Banner(services.policy, settings.mount_path)
    return [*static_routes(), *center.routes(), *console.routes(), *banner.routes()]
