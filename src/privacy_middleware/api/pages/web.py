"""What every HTML page shares: templates, the string catalogue, security headers, the page
session (the shop's token carried in a cookie), CSRF tokens and small urlencoded forms.

Pages are server-rendered and work without JavaScript; they load only this package's own CSS and
scripts, so the Content-Security-Policy can forbid everything else (no inline script or style).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...context import Principal, get_context
from ...errors import PrivacyError
from ...guests.service import SESSION_PREFIX as GUEST_SESSION_PREFIX
from ...guests.service import GuestService
from ...identity import IdentityChain, TokenVerifier

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SESSION_COOKIE = "pm_session"
CSRF_COOKIE = "pm_csrf"
LANG_COOKIE = "pm_lang"
MAX_FORM = 16 * 1024


def _load_catalogue() -> dict[str, dict[str, str]]:
    raw = resources.files(__package__).joinpath("strings.toml").read_text(encoding="utf-8")
    return {lang: {k: str(v) for k, v in table.items()} for lang, table in tomllib.loads(raw).items()}


CATALOGUE = _load_catalogue()
LANGUAGES: tuple[str, ...] = tuple(CATALOGUE)
DEFAULT_LANGUAGE = "en"


def negotiate(accept_language: str | None, chosen: str | None) -> str:
    """The page language: an explicit choice, else the best Accept-Language match, else English."""
    if chosen in CATALOGUE:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower().split("-")[0]))
    for quality, _, tag in sorted(ranked):
        if quality < 0 and tag in CATALOGUE:
            return tag
    return DEFAULT_LANGUAGE


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._strings = CATALOGUE[lang]
        self._fallback = CATALOGUE[DEFAULT_LANGUAGE]

    def __call__(self, key: str, **values: Any) -> str:
        text = self._strings.get(key) or self._fallback.get(key) or key
        return text.format(**values) if values else text


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("privacy_middleware.api.pages", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def security_headers(response: Response) -> Response:
    response.headers["content-security-policy"] = CSP
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "same-origin"  # no-referrer would make forms send Origin: null
    response.headers["x-frame-options"] = "DENY"
    response.headers["cache-control"] = "no-store"
    response.headers["vary"] = "Cookie, Accept-Language, Sec-GPC"
    return response


@dataclass(slots=True)
class PageRequest:
    """One page request's facts: language, signed-in principal and the CSRF token to embed."""

    request: Request
    t: Translator
    principal: Principal | None
    csrf: str
    new_csrf_cookie: str | None
    new_lang: str | None
    base: str

    @property
    def subject(self) -> str | None:
        return self.principal.subject if self.principal else None


class Pages:
    """Renders pages and guards their forms for one mounted section (the centre or the console)."""

    def __init__(
        self,
        *,
        mount: str,
        verifier: TokenVerifier,
        csrf_key: bytes,
        secure_cookies: bool,
        allowed_origins: Any = (),
        token_cookie: str = "",
        guests: GuestService | None = None,
        identity: IdentityChain | None = None,
        shop_login_url: str = "",
    ) -> None:
        self.mount = mount
        self.identity = identity
        self.shop_login_url = shop_login_url
        self.guests = guests
        self.token_cookie = token_cookie
        self.verifier = verifier
        self._csrf_key = csrf_key
        self.secure = secure_cookies
        self.allowed_origins = frozenset(str(o).rstrip("/").lower() for o in allowed_origins)

    # -- cookies -----------------------------------------------------------------------------

    def cookie(self, name: str, value: str, *, max_age: int | None, same_site: str = "Strict") -> str:
        parts = [f"{name}={value}", f"Path={self.mount or '/'}", "HttpOnly", f"SameSite={same_site}"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)

    def _csrf_for(self, seed: str) -> str:
        mac = hmac.new(self._csrf_key, b"privacy-pages-csrf\x00" + seed.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    # -- request facts -----------------------------------------------------------------------

    async def principal(self, request: Request) -> Principal | None:
        """The bearer token's principal, else the page session's; an invalid session is no session."""
        ctx = get_context(request.scope)
        if ctx is not None and ctx.principal is not None:
            return ctx.principal
        token = request.cookies.get(SESSION_COOKIE) or (
            request.cookies.get(self.token_cookie) if self.token_cookie else None
        )
        if not token:
            return None
        try:
            if self.guests is not None and token.startswith(GUEST_SESSION_PREFIX):
                subject = self.guests.session_subject(token)
                return self.guests.principal(subject) if subject else None
            return await self.from_token(token)
        except PrivacyError as error:
            if error.status >= 500:
                raise  # a provider that cannot answer is 503, never "signed out"
            return None

    async def from_token(self, token: str) -> Principal:
        """The principal of a bearer token, checked by the same identity providers as the API (a JWT,
        an opaque token through introspection...); 401 when none recognises it."""
        if self.identity is None:
            return self.verifier.principal_from_claims(await self.verifier.verify(token))
        scope = {
            "type": "http",
            "method": "GET",
            "path": self.mount,
            "headers": [(b"authorization", b"Bearer " + token.encode("latin-1", "replace"))],
        }
        principal = await self.identity.authenticate(scope)
        if principal is None:
            raise PrivacyError("invalid_token", "The token is not recognised.", 401)
        return principal

    async def page_request(self, request: Request) -> PageRequest:
        chosen = request.query_params.get("lang")
        lang = negotiate(request.headers.get("accept-language"), chosen or request.cookies.get(LANG_COOKIE))
        seed = request.cookies.get(CSRF_COOKIE, "")
        new_seed = None
        if len(seed) < 32:
            seed = new_seed = secrets.token_urlsafe(32)
        return PageRequest(
            request=request,
            t=Translator(lang),
            principal=await self.principal(request),
            csrf=self._csrf_for(seed),
            new_csrf_cookie=new_seed,
            new_lang=lang if chosen in CATALOGUE else None,
            base=self.mount,
        )

    def check_origin(self, request: Request) -> None:
        """Refuse a form posted from another site (Origin or Fetch Metadata say so)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise PrivacyError("csrf_rejected", "This form must be sent from the privacy pages.", 403)
        origin = request.headers.get("origin")
        if origin is None:
            return
        origin = origin.rstrip("/").lower()
        own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        if origin != own and origin not in self.allowed_origins:
            raise PrivacyError("csrf_rejected", "This form must be sent from the privacy pages.", 403)

    async def form(self, request: Request, *, csrf: bool = True) -> dict[str, list[str]]:
        """The urlencoded body of a page form, after the CSRF checks."""
        self.check_origin(request)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM):
            raise PrivacyError("body_too_large", f"A form may have at most {MAX_FORM} bytes.", 413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise PrivacyError("body_too_large", f"A form may have at most {MAX_FORM} bytes.", 413)
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise PrivacyError("invalid_form", "Send the form as application/x-www-form-urlencoded.", 415)
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            raise PrivacyError("invalid_form", "The form could not be read.", 400) from None
        fields: dict[str, list[str]] = {}
        for key, value in pairs:
            fields.setdefault(key, []).append(value)
        if csrf:
            seed = request.cookies.get(CSRF_COOKIE, "")
            sent = (fields.get("csrf") or [""])[0]
            if len(seed) < 32 or not hmac.compare_digest(sent, self._csrf_for(seed)):
                raise PrivacyError("csrf_rejected", "The form expired: reload the page and try again.", 403)
        return fields

    # -- responses ---------------------------------------------------------------------------

    def render(
        self, page: PageRequest, template: str, context: Mapping[str, Any], *, status: int = 200, section: str = ""
    ) -> Response:
        html = _ENV.get_template(template).render(
            t=page.t,
            lang=page.t.lang,
            languages=LANGUAGES,
            csrf=page.csrf,
            base=page.base,
            principal=page.principal,
            section=section,
            path=page.request.url.path,
            **context,
        )
        response = security_headers(HTMLResponse(html, status_code=status))
        self.finish(page, response)
        return response

    def finish(self, page: PageRequest, response: Response) -> None:
        if page.new_csrf_cookie is not None:
            response.headers.append("set-cookie", self.cookie(CSRF_COOKIE, page.new_csrf_cookie, max_age=None))
        if page.new_lang is not None:
            response.headers.append(
                "set-cookie", self.cookie(LANG_COOKIE, page.new_lang, max_age=365 * 86400, same_site="Lax")
            )

    def guarded(self, endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """A refusal on a page is an HTML page for a browser (problem+json for any other client)."""

        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except PrivacyError as error:
                if "text/html" not in request.headers.get("accept", ""):
                    raise
                page = await self.page_request(request)
                back = request.headers.get("referer") or ""
                own = f"{request.url.scheme}://{request.headers.get('host', '')}/"
                response = self.render(
                    page,
                    "error.html",
                    {
                        "status": error.status,
                        "message": error.message,
                        "back": back if back.startswith(own) else self.mount + "/center",
                    },
                    status=error.status,
                )
                for name, value in error.headers.items():
                    response.headers[name] = value
                return response

        return run

    @staticmethod
    def redirect(url: str, *, set_cookies: list[str] | None = None) -> Response:
        response = security_headers(RedirectResponse(url, status_code=303))
        for value in set_cookies or []:
            response.headers.append("set-cookie", value)
        return response

    def session_cookie_for(self, token: str, principal: Principal) -> str:
        return self.session_cookie(token, principal.claims)

    def session_cookie(self, token: str, claims: Mapping[str, Any]) -> str:
        expires = claims.get("exp")
        remaining = int((expires if isinstance(expires, int | float) else time.time() + 3600) - time.time())
        return self.cookie(SESSION_COOKIE, token, max_age=max(remaining, 1))

    def end_session_cookie(self) -> str:
        return self.cookie(SESSION_COOKIE, "", max_age=0)


def first(fields: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = fields.get(name)
    return values[0] if values else default
