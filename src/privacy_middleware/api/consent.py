"""The consent HTTP API (Starlette routes), relative to where the lead mounts them.

GET /consent, PUT /consent, DELETE /consent, GET /consent/history; and, as a separate list,
GET /.well-known/gpc.json. Who the person is comes from the context the middleware put in the scope:
a verified principal's subject, else the visitor named by the signed consent cookie.

CSRF: every write (PUT, DELETE) must carry the header `X-Privacy-Consent` (any non-empty value),
which a cross-site form cannot send and a cross-site script cannot send without passing a CORS
preflight; and when the browser sends `Origin`, it must be the request's own origin or one of
`allowed_origins`. Failures are 403 `csrf_rejected`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..consent.consent_mode import consent_mode
from ..consent.cookie_filter import expiring_set_cookies
from ..consent.decisions import mechanism
from ..consent.service import ConsentService, Resolution, StoreUnavailable, new_visitor_id
from ..consent.signals import RequestSignals, request_signals
from ..context import RequestContext, get_context
from ..errors import PrivacyError, problem_body, problem_headers
from ..store.consent_records import ConsentRecord, Holder, Method

CSRF_HEADER = "x-privacy-consent"
MAX_BODY = 16 * 1024
Endpoint = Callable[[Request], Awaitable[Response]]


def _json(data: Any, status: int = 200, set_cookies: Sequence[str] = ()) -> Response:
    response = Response(orjson.dumps(data), status_code=status, media_type="application/json")
    response.headers["cache-control"] = "no-store"
    response.headers["vary"] = "Cookie, Authorization, Sec-GPC"
    for value in set_cookies:
        response.headers.append("set-cookie", value)
    return response


def _problem(error: PrivacyError) -> Response:
    body = problem_body(error)
    response = Response(body, status_code=error.status)
    response.raw_headers = problem_headers(error, body)
    return response


def _guarded(endpoint: Endpoint) -> Endpoint:
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except PrivacyError as error:
            return _problem(error)

    return run


class ConsentAPI:
    def __init__(
        self,
        service: ConsentService,
        *,
        allowed_origins: Sequence[str] = (),
        cookie_domains: Sequence[str] = (),
    ) -> None:
        self.service = service
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.cookie_domains = tuple(cookie_domains)

    # -- request facts ---------------------------------------------------------------------------

    @staticmethod
    def _context(request: Request) -> RequestContext:
        ctx = get_context(request.scope)
        if ctx is None:
            raise PrivacyError("context_missing", "the privacy middleware did not run for this request", 500)
        return ctx

    def _signals(self, request: Request) -> RequestSignals:
        return request_signals(
            request.scope["headers"],
            request.scope.get("query_string", b""),
            cookie_name=self.service.cookies.cookie_name,
        )

    def _holder(self, ctx: RequestContext, signals: RequestSignals) -> Holder | None:
        if ctx.subject:
            return Holder.subject(ctx.subject)
        consent = self.service.verify_cookie(signals.consent_cookie)
        return consent.holder if consent is not None else None

    def _write_holder(self, ctx: RequestContext, signals: RequestSignals) -> Holder:
        # An anonymous request writes only for a visitor: a cookie naming an account does not
        # authorise changing that account's consent without its login.
        if ctx.subject:
            return Holder.subject(ctx.subject)
        consent = self.service.verify_cookie(signals.consent_cookie)
        if consent is not None and consent.holder.kind == "visitor":
            return consent.holder
        return Holder.visitor(new_visitor_id())

    def _check_csrf(self, request: Request) -> None:
        if not request.headers.get(CSRF_HEADER, "").strip():
            raise PrivacyError("csrf_rejected", f"consent changes need the {CSRF_HEADER} header", 403)
        origin = request.headers.get("origin")
        if origin is None:
            return
        origin = origin.rstrip("/").lower()
        own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        if origin != own and origin not in self.allowed_origins:
            raise PrivacyError("csrf_rejected", "cross-origin consent changes are not allowed", 403)

    async def _read_purposes(self, request: Request) -> tuple[dict[str, Any], Method]:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise PrivacyError("body_too_large", f"the body must be at most {MAX_BODY} bytes", 413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise PrivacyError("body_too_large", f"the body must be at most {MAX_BODY} bytes", 413)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise PrivacyError("invalid_body", "the body must be JSON", 400) from None
        if not isinstance(data, dict) or not isinstance(data.get("purposes"), dict):
            raise PrivacyError("invalid_body", 'the body must be {"purposes": {"<purpose>": true|false}}', 422)
        extra = sorted(set(data) - {"purposes", "method"})
        if extra:
            raise PrivacyError("invalid_body", "unexpected members in the body", 422, extra={"members": extra})
        method = data.get("method", "api")
        if method == "api" or method == "banner":
            return data["purposes"], method
        raise PrivacyError("invalid_body", 'method must be "api" or "banner"', 422)

    # -- views -----------------------------------------------------------------------------------

    def _view(self, resolution: Resolution) -> dict[str, Any]:
        policy = self.service.policy
        purposes = {}
        for name, decision in resolution.decision.purposes.items():
            purpose = policy.purposes[name]
            choice = resolution.choices.get(name)
            purposes[name] = {
                "allowed": decision.allowed,
                "reason": decision.reason,
                "legal_basis": purpose.legal_basis,
                "mechanism": mechanism(purpose) if name in self.service.choosable else "none",
                "choice": choice.granted if choice is not None else None,
                "reconsent_required": decision.reconsent_required,
                "cookie_class": purpose.cookie_class,
                "description": purpose.description,
            }
        return {
            "policy_version": policy.policy.version,
            "holder": resolution.holder.kind if resolution.holder else None,
            "source": resolution.source,
            "gpc": resolution.gpc,
            "tcf": resolution.tcf,
            "reconsent_required": resolution.decision.reconsent_required,
            "purposes": purposes,
            "consent_mode": consent_mode(policy, resolution.decision),
        }

    async def _resolve(self, ctx: RequestContext, signals: RequestSignals, cookie: str | None) -> Resolution:
        return await self.service.resolve(
            subject=ctx.subject, consent_cookie=cookie, gpc=signals.gpc, tc_string=signals.tc_string
        )

    @staticmethod
    def _record_view(record: ConsentRecord) -> dict[str, Any]:
        return {
            "record_id": record.id,
            "holder": record.holder.kind,
            "purposes": dict(record.purposes),
            "policy_version": record.policy_version,
            "method": record.method,
            "recorded_at": record.recorded_at.isoformat(),
            "ip_prefix": record.ip_prefix,
            "user_agent_family": record.ua_family,
            "linked_from_visitor": record.linked_from is not None,
            "receipt": record.receipt,
        }

    # -- endpoints -------------------------------------------------------------------------------

    async def get_consent(self, request: Request) -> Response:
        ctx = self._context(request)
        signals = self._signals(request)
        cookie, set_cookies = signals.consent_cookie, []
        holder = self._holder(ctx, signals) if signals.gpc else None
        if holder is not None and (ctx.subject or holder.kind == "visitor"):
            # Persist the GPC opt-out, so that the signal's later absence is not an opt-in.
            try:
                change = await self.service.apply_gpc(
                    holder, client_ip=ctx.client_ip, user_agent=request.headers.get("user-agent")
                )
            except StoreUnavailable:
                change = None
            if change is not None:
                cookie, set_cookies = change.cookie, [change.set_cookie]
        return _json(self._view(await self._resolve(ctx, signals, cookie)), set_cookies=set_cookies)

    async def _after_change(
        self, request: Request, ctx: RequestContext, signals: RequestSignals, cookie: str, set_cookie: str
    ) -> tuple[dict[str, Any], list[str]]:
        resolution = await self._resolve(ctx, signals, cookie)
        expiring = expiring_set_cookies(
            request.headers.get("cookie"),
            self.service.policy.tracking.cookies,
            resolution.decision,
            domains=self.cookie_domains,
        )
        return self._view(resolution), [set_cookie, *expiring]

    async def put_consent(self, request: Request) -> Response:
        self._check_csrf(request)
        ctx = self._context(request)
        signals = self._signals(request)
        purposes, method = await self._read_purposes(request)
        holder = self._write_holder(ctx, signals)
        change = await self.service.set_purposes(
            holder,
            purposes,
            method=method,
            client_ip=ctx.client_ip,
            user_agent=request.headers.get("user-agent"),
        )
        view, cookies = await self._after_change(request, ctx, signals, change.cookie, change.set_cookie)
        view.update(record_id=change.record.id, receipt=change.receipt)
        return _json(view, set_cookies=cookies)

    async def delete_consent(self, request: Request) -> Response:
        self._check_csrf(request)
        ctx = self._context(request)
        signals = self._signals(request)
        holder = self._write_holder(ctx, signals)
        change = await self.service.withdraw(
            holder, client_ip=ctx.client_ip, user_agent=request.headers.get("user-agent")
        )
        view, cookies = await self._after_change(request, ctx, signals, change.cookie, change.set_cookie)
        view.update(record_id=change.record.id, receipt=change.receipt)
        return _json(view, set_cookies=cookies)

    async def get_history(self, request: Request) -> Response:
        ctx = self._context(request)
        holder = self._holder(ctx, self._signals(request))
        records = await self.service.history(holder) if holder is not None else []
        return _json(
            {
                "records": [self._record_view(r) for r in records],
                "receipt_public_key": self.service.receipts.public_key_pem(),
                "receipt_key_id": self.service.receipts.kid,
            }
        )

    def routes(self) -> list[Route]:
        return [
            Route("/consent", _guarded(self.get_consent), methods=["GET"]),
            Route("/consent", _guarded(self.put_consent), methods=["PUT"]),
            Route("/consent", _guarded(self.delete_consent), methods=["DELETE"]),
            Route("/consent/history", _guarded(self.get_history), methods=["GET"]),
        ]


def consent_routes(
    service: ConsentService, *, allowed_origins: Sequence[str] = (), cookie_domains: Sequence[str] = ()
) -> list[Route]:
    """The consent API routes. `allowed_origins`: storefront origins (e.g. `https://shop.example`)
    allowed to change consent besides the API's own; `cookie_domains`: domains tracking cookies were
    set for, so that a withdrawal can expire them."""
    return ConsentAPI(service, allowed_origins=allowed_origins, cookie_domains=cookie_domains).routes()


def gpc_routes(last_update: dt.date | dt.datetime | None = None) -> list[Route]:
    """`GET /.well-known/gpc.json`: this site honours Global Privacy Control (W3C GPC §support resource)."""
    document: dict[str, Any] = {"gpc": True}
    if last_update is not None:
        document["lastUpdate"] = last_update.isoformat()
    body = orjson.dumps(document)

    async def gpc_json(request: Request) -> Response:
        response = Response(body, media_type="application/json")
        response.headers["cache-control"] = "public, max-age=86400"
        return response

    return [Route("/.well-known/gpc.json", gpc_json, methods=["GET"])]
