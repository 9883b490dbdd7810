"""The pure-ASGI middleware: match the route, run its plan, nothing else.

Requests on routes without a plan go to the app after one table lookup, through the card sentinel
(a body is checked for card data; a JSON answer has its card numbers masked). Websockets pass
through; lifespan is answered here when the wrapped app cannot (Django raises on it).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from .asgi.body import (
    ClientDisconnected,
    decoded_for_inspection,
    parse_length,
    read_body,
    replay,
    too_large,
    whole_body,
)
from .asgi.card_responses import MaskingResponse, ResponseCardGuard
from .asgi.card_sentinel import FORM, CardSentinel, exempt_places, has_body, scan
from .asgi.headers import first_values, get_header, is_json_media_type, media_of
from .asgi.responses import send_problem
from .asgi.strict_json import load_strict
from .audit.refusals import audit_refusal
from .context import SCOPE_KEY, RequestContext, current_scope
from .errors import PrivacyError, StoreUnreachable
from .fields import lazy, native
from .fields.card_sentinel import may_hold_card_data, may_hold_card_number
from .gauges import OperatorGauges
from .logs import access_log, configure_logging, heard, log_request
from .pipeline import native_request
from .pipeline.meters import counter_inc, histogram_observe
from .pipeline.plan import Exchange, Respond, RoutePlan, Step
from .pipeline.trace import TRACE_HEADER, Tracer
from .routing.canonical import AliasTable
from .routing.identity import RouteIdentity, identity_for
from .runtime import Runtime
from .settings import Settings
from .types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    import httpx

    from .transport import PrivacyTransport

logger = logging.getLogger("privacy_middleware")

BODYLESS_STATUSES = {204, 304}
# What a failure inside the middleware answers: never a plain-text 500, never the request forwarded.
INTERNAL_ERROR = PrivacyError("internal_error", "The privacy layer failed; the request was not forwarded.", 500)
ROOT_API_PATHS = frozenset({"/.well-known/gpc.json"})
UNPLANNED_KEPT = 4096  # unplanned (method, path) pairs remembered; the set is emptied when full
# What a rewritten request body takes off the request's headers (its new length is appended).
REWRITTEN_BODY_DROPS = frozenset({b"content-md5", b"digest", b"content-digest", b"content-length"})
# The request headers a planned route reads, each in one scan (asgi.headers.first_values).
RUN_HEADERS = (b"user-agent", TRACE_HEADER)
REQUEST_BODY_HEADERS = (b"content-length", b"transfer-encoding", b"content-encoding", b"content-type")
# The response headers a planned route's answer is judged by, in one scan.
RESPONSE_START_HEADERS = (b"content-encoding", b"content-type", b"content-length")
BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class PrivacyMiddleware(native.Front):
    """`app = PrivacyMiddleware(app)` — settings from PRIVACY_* unless given.

    Calling an instance is `native.Front`'s call (C where the extension is built): a bodiless request
    on a remembered pass-through pair (no plan, no API or metrics path, a method never placed on a
    plan) goes to the app with the card guard's `send` (its JSON answer's card numbers masked, in C),
    and the app's own awaitable goes back to the server, with no frame or coroutine of the
    middleware's on that path. Everything else is `serve`'s coroutine. Servers tell ASGI 3 from ASGI 2
    by `app.__call__` being a coroutine function; that attribute is `serve` (set on the instance in
    `__init__`), which answers every request alike."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None, *, runtime: Runtime | None = None) -> None:
        self.app = app
        self.runtime = runtime or Runtime(settings or Settings())
        self.settings = self.runtime.settings
        configure_logging(self.settings)
        self._gauges: OperatorGauges | None = None
        self.plans = self.runtime.plans
        self.mount = self.settings.mount_path
        self.mount_prefix = self.mount + "/"
        self.mounted = bool(self.mount)
        self.metrics_path = self.settings.metrics_path
        self.cookie_gate = self.runtime.cookie_gate
        # Without governed cookies or outbound gates a bodiless request on a route without a plan costs
        # the route match (and the route identity check), the card sentinel's send wrapper (its JSON
        # answer is checked for card numbers) and one call: no context variable.
        self.bare_passthrough = self.cookie_gate is None and not self.runtime.policy.tracking.hosts
        # the requests counter's children by (route, outcome), and the plan-time histogram, as the
        # bare updates of pipeline/meters.py (bound once: no per-call label or exemplar checks)
        self._counters: dict[tuple[str, str], Callable[[], None]] = {}
        self.observe_plan_seconds = histogram_observe(self.runtime.metrics.plan_seconds)
        # (method, path) pairs the plan table has no plan for (it never changes once built): a repeated
        # unplanned request skips the table's miss; the route identity check still runs per request.
        self._unplanned: set[tuple[str, str]] = set()
        # Of those, the pairs whose method the route identity never places on a plan, whatever the path
        # (`RouteIdentity.may_place`: no route that runs a planned handler serves the method; the
        # identity's index is built once and never changes, nor does the plan table): a bodiless
        # request on one goes to the app after one C call in `__call__` (`native.pass_through`), with
        # no identity check. Only kept where that call exists (the pass-through is bare, the C guard
        # built).
        self._passthrough: dict[str, set[str]] = {}  # path -> methods
        self.tracer = Tracer(self.runtime.policy, self.runtime.verifier.authenticate, self.runtime.audit.emit)
        self.runtime.identity.bind_app(app)
        # Which planned route a request really reaches when its path is not a planned template.
        plans = self.plans.entries()
        self.identity: RouteIdentity[RoutePlan] = identity_for(
            app, plans, lambda: AliasTable((p.spec.method, p.spec.template, p) for p in plans)
        )
        tokenising = self.runtime.policy.cards.unplanned == "tokenise"
        self.sentinel = CardSentinel(
            self.settings.max_body_bytes,
            self.runtime.audit,
            tokenise=self.runtime.fields.tokenise_card if tokenising else None,
            subject_of=self._subject_of if tokenising else None,
        )
        # Responses of routes without a response plan: card numbers masked (asgi/card_responses.py).
        self.cards = ResponseCardGuard(self.runtime.policy, self.runtime.audit, self.settings.max_response_bytes)
        # its common case in C where built and no payment route exempts a caller (`ResponseCardGuard.checking`)
        self.card_send = native.card_send if not self.cards.payment.size else None
        # the C guard for a request that certainly has no body, else None (the body is read and checked)
        self._bodiless_send = (
            native.bodiless_card_send if self.card_send is not None and self.bare_passthrough else None
        )
        self._card_state = self.cards.native_state
        # the pass-through decision and the guard's `send` in one C call (the class's call, `native.Front`);
        # what it hands the server: the app's own coroutine where the app makes them (a server may
        # start the call as a task, and tasks take coroutines only), else one awaiting it
        pass_state = (self._card_state, self._passthrough) if self._bodiless_send is not None else None
        self.arm(pass_state, app if _makes_coroutines(app) else _awaited(app), self.serve)
        from .logscrub import install as scrub_query_strings_from_logs

        scrub_query_strings_from_logs()
        from .routing.coverage import check_at_start

        check_at_start(app, self.runtime.policy)
        # What servers read to pick the ASGI version (uvicorn and asgiref: `asyncio.iscoroutinefunction
        # (app.__call__)`; hypercorn: `inspect.iscoroutinefunction`): the coroutine function `serve`.
        # Calling the instance still goes through the class's call (`native.Front`, the class docstring).
        self.__call__ = self.serve  # type: ignore[method-assign]

    def transport(self, inner: httpx.AsyncBaseTransport | None = None) -> PrivacyTransport:
        """An httpx transport for the shop's partner calls that applies this policy (PrivacyTransport)."""
        from .transport import PrivacyTransport

        return PrivacyTransport(self.runtime.services, inner)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application: lifespan, websockets and HTTP requests on every route."""
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        key = (scope["method"], path)
        if key in self._unplanned:  # asked before: no plan, not the privacy API, not the metrics path
            own = metrics = False
            found = None
        else:
            own = self.mounted and (path == self.mount or path.startswith(self.mount_prefix) or path in ROOT_API_PATHS)
            metrics = path == self.metrics_path if self.metrics_path else False
            found = None if own or metrics else self.plans.match(key[0], path)
            if found is None and not (own or metrics):
                if len(self._unplanned) >= UNPLANNED_KEPT:
                    self._unplanned.clear()
                self._unplanned.add(key)
                if self._bodiless_send is not None and not self.identity.may_place(key[0]):
                    if len(self._passthrough) >= UNPLANNED_KEPT:
                        self._passthrough.clear()
                    self._passthrough.setdefault(path, set()).add(key[0])
        if found is None and self.bare_passthrough and not (own or metrics):
            try:
                unplanned = self.identity.place(scope) is None
            except PrivacyError:
                unplanned = False  # refused below, with its audit event and problem answer
            if unplanned and self._bodiless_send is not None:
                guarded = self._bodiless_send(self._card_state, scope, send)
                if guarded is not None:  # no body: one C call per message checks the answer
                    await self.app(scope, receive, guarded)
                    return
            elif unplanned and _bodiless(scope):  # a body goes the long way: the card sentinel reads it
                if not self.cards.payment.size:  # no payment route: no caller to ask, no await
                    await self.app(scope, receive, MaskingResponse(self.cards, scope, send).send)
                else:
                    await self.app(scope, receive, await self._card_checked(scope, send))
                return
        if self.cookie_gate is not None:
            send = self.cookie_gate.wrap(scope, send)
        token = current_scope.set(scope)
        try:
            if own:
                await self._privacy_api(scope, receive, send)
                return
            if metrics:
                await self._metrics(send)
                return
            if found is None:
                try:
                    found = self.identity.place(scope)
                except PrivacyError as error:
                    audit_refusal(self.runtime.audit, error, route="(unplaced)", ip=None, subject=None)
                    await send_problem(send, error, head=scope["method"] == "HEAD")
                    return
                if found is None:
                    try:
                        receive = await self.sentinel.screen(scope, receive)
                    except PrivacyError as error:
                        self.sentinel.refused(scope, error)
                        await send_problem(send, error, head=scope["method"] == "HEAD")
                        return
                    except ClientDisconnected:
                        return
                    await self.app(scope, receive, await self._card_checked(scope, send))
                    return
            if not await self._serving(scope, send):
                return
            await self._run(found[0], found[1], scope, receive, send)
        finally:
            current_scope.reset(token)

    async def _serving(self, scope: Scope, send: Send) -> bool:
        """Started (store reachable); otherwise the caller has had 503 `store_unavailable`."""
        if self.runtime.is_serving():
            return True
        try:
            await self.runtime.ensure_serving()
        except StoreUnreachable as error:
            self.runtime.metrics.refusals.labels(error.code).inc()
            await send_problem(send, error, head=scope.get("method") == "HEAD")
            return False
        return True

    async def _subject_of(self, scope: Scope) -> str | None:
        """The signed-in caller of an unplanned route, asked only to tokenise a card number for them."""
        await self.runtime.ensure_serving()
        principal = await self.runtime.identity.authenticate(scope)
        return principal.subject if principal is not None else None

    async def _card_checked(self, scope: Scope, send: Send) -> Send:
        """The `send` of a route without a plan: card numbers in its JSON masked, except on a payment
        route called by its own recipient (only then is the caller authenticated here)."""
        if self.cards.payment_recipient(scope) is None:
            return self.cards.wrap(scope, send)
        try:
            principal = await self.runtime.identity.authenticate(scope)
        except PrivacyError:
            principal = None
        recipient = principal.recipient if principal is not None else None
        return self.cards.wrap(scope, send, lambda: recipient)

    # --- planned routes -------------------------------------------------------------------

    async def _run(self, plan: RoutePlan, params: dict[str, str], scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        user_agent, trace_token = first_values(scope.get("headers") or (), RUN_HEADERS)
        ctx = RequestContext(
            method=scope["method"],
            path=scope["path"],
            client_ip=self.runtime.client_ip.resolve(scope),
            path_params=params,
            user_agent=user_agent.decode("latin-1") if user_agent else "",
        )
        guard = None
        if plan.spec.response is None:  # no plan for what it answers: card numbers are masked
            if not self.cards.payment.size:  # no payment route: no recipient to ask about, checked in C
                send = self.cards.checking(scope, send)  # where built (the steps' headers go on ahead)
            else:
                guard = self.cards.response(scope, send, lambda: ctx.principal.recipient if ctx.principal else None)
                send = guard.send
        scope = dict(scope)
        scope[SCOPE_KEY] = ctx
        current_scope.set(scope)  # request_context() in the shop's code; reset by __call__
        ex = Exchange(scope=scope, ctx=ctx, spec=plan.spec)
        route_label = plan.label or f"{plan.spec.method} {plan.spec.template}"
        ctx.facts.route = route_label
        outcome = "passed"
        code: str | None = None
        try:
            try:
                ctx.principal = await self.runtime.identity.authenticate(scope, plan.route)
                if trace_token is not None:
                    plan = await self.tracer.traced(plan, ex, trace_token)
                for step in plan.befores:
                    await step.before(ex)
                if plan.needs_request_body:
                    receive = await self._rewrite_request(plan, ex, scope, receive)
                else:
                    receive = await self.sentinel.screen(scope, receive)
            except PrivacyError as error:
                outcome = "refused"
                code = error.code
                self.runtime.metrics.refusals.labels(error.code).inc()
                ex.status = error.status
                audit_refusal(self.runtime.audit, error, route=route_label, ip=ctx.client_ip, subject=ctx.subject)
                await send_problem(send, error, head=scope["method"] == "HEAD")
                return
            except Respond as answer:
                outcome = "answered"
                ex.status = answer.status
                await send(
                    {
                        "type": "http.response.start",
                        "status": answer.status,
                        "headers": [*answer.headers, (b"content-length", str(len(answer.body)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": answer.body})
                return
            except ClientDisconnected:
                outcome = "disconnected"
                return
            except Exception as exc:  # a bug or a broken dependency: answer problem+json, forward nothing
                outcome = "failed"
                ex.status = 500
                logger.error("privacy plan failed before forwarding on %s (%s)", route_label, type(exc).__name__)
                self.runtime.metrics.refusals.labels(INTERNAL_ERROR.code).inc()
                await send_problem(send, INTERNAL_ERROR, head=scope["method"] == "HEAD")
                return
            if plan.needs_response_start:
                responder = _Responder(self, plan, ex, send, started)
                await self.app(scope, receive, responder.send)
                if responder.refused:
                    outcome = "refused"
                    code = ctx.facts.refusal_code
            else:
                self.observe_plan_seconds(time.perf_counter() - started)
                if ex.extra_headers:
                    if guard is not None:  # the guard adds them to the start it checks: no second wrapper
                        guard.extra = ex.extra_headers
                    else:
                        send = _with_headers(send, ex.extra_headers)
                await self.app(scope, receive, send)
        finally:
            count = self._counters.get((route_label, outcome))
            if count is None:
                count = self._counters[(route_label, outcome)] = counter_inc(
                    self.runtime.metrics.requests.labels(route_label, outcome)
                )
            count()
            if heard(access_log, logging.INFO):
                log_request(scope, ctx, route_label, outcome, ex.status, code)
            for step in plan.afters:
                try:
                    await step.after(ex)
                except Exception:  # an audit hiccup must not turn a served response into an error
                    logger.exception("privacy step %s failed after the response", type(step).__name__)

    async def _rewrite_request(self, plan: RoutePlan, ex: Exchange, scope: Scope, receive: Receive) -> Receive:
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        if type(headers) is not list:  # any other iterable is read once, into a list
            headers = list(headers)
        limit = self.settings.max_body_bytes
        declared, chunked, encoding, content_type = first_values(headers, REQUEST_BODY_HEADERS)
        length = None if declared is None else parse_length(declared)
        if length is not None and length > limit:
            raise too_large(limit)  # before reading: no 100-continue for a body we will refuse
        if length == 0 or (length is None and chunked is None and ex.ctx.method in BODYLESS_METHODS):
            return receive
        media = media_of(content_type)
        compressed = encoding not in (None, b"identity")
        if compressed and plan.needs_request_json:
            raise PrivacyError(
                "unsupported_content_encoding",
                "This route's body must be inspected; send it uncompressed.",
                415,
            )
        first = await receive()  # a small body comes whole in its first message: no reading loop
        body = whole_body(first, limit)
        if body is None:
            body = await read_body(receive, limit, first)
        ex.request_body = body
        if not body or compressed:
            ex.request_body = b"" if compressed else body
            for step in plan.on_requests:
                await step.on_request(ex)
            if compressed and (is_json_media_type(media) or media == FORM):  # checked as on any route
                scan(decoded_for_inspection(body, encoding or b"", limit), media)
            return replay(body, receive)
        if is_json_media_type(media):
            # The common protected body in one native pass (pipeline/native_request.py); None: this path.
            program = native_request.program_for(plan) if native_request.ENABLED else None
            if program is not None:
                forwarded = await native_request.forward(program, ex, body)
                if forwarded is not None:
                    if ex.request_changed:
                        headers = [(k, v) for k, v in headers if k.lower() not in REWRITTEN_BODY_DROPS]
                        headers.append((b"content-length", str(len(forwarded)).encode()))
                        scope["headers"] = headers
                    return replay(forwarded, receive)
            try:
                document = load_strict(body)  # duplicates and depth, over every object of the body
                if plan.lazy_request is not None:
                    document = lazy.decode_request(body, plan.lazy_request, document)
                    ex.request_lazy = True
                ex.request_json = document
            except orjson.JSONDecodeError:
                if plan.needs_request_json:
                    raise PrivacyError("malformed_json", "The request body is not valid JSON.", 400) from None
            else:
                ex.request_has_json = True
        elif plan.needs_request_json:
            raise PrivacyError("unsupported_media_type", "This route accepts JSON bodies only.", 415)
        for step in plan.on_requests:
            await step.on_request(ex)
        # Card data the route's rules did not handle: refused (or tokenised) on this route as on any other.
        # A body the prefilter clears holds none (and is not tokenised): the rules' places are not walked.
        # A lazily read body is walked without it: its raw parts were prefiltered when it was read (the
        # suspect ones decoded), so the walk covers what the prefilter would have cleared or sent on.
        if ex.request_has_json and (ex.request_lazy or may_hold_card_data(body)):
            exempt = exempt_places(plan.spec, ex.request_json)
            if ex.request_replaced:  # a pseudonym is hex: now and then a run of digits a card check would take
                exempt |= ex.request_replaced
            tokenising = self.sentinel.tokenise is not None and may_hold_card_number(body)
            prefiltered = True
            if tokenising and await self.sentinel.tokenise_document(scope, ex.request_json, ex.ctx.subject, exempt):
                ex.request_changed = True
                body = lazy.encode(ex.request_json) if ex.request_lazy else orjson.dumps(ex.request_json)
                prefiltered = False
            scan(body, "application/json", ex.request_json, exempt, prefiltered=prefiltered)
        elif not ex.request_has_json and media == FORM:
            scan(body, FORM)
        if ex.request_changed:
            body = lazy.encode(ex.request_json) if ex.request_lazy else orjson.dumps(ex.request_json)
            headers = [(k, v) for k, v in headers if k.lower() not in REWRITTEN_BODY_DROPS]
            headers.append((b"content-length", str(len(body)).encode()))
            scope["headers"] = headers
        return replay(body, receive)

    # --- privacy API, metrics, lifespan -----------------------------------------------------

    async def _privacy_api(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self._serving(scope, send):
            return
        headers = scope.get("headers") or []
        ctx = RequestContext(
            method=scope["method"],
            path=scope["path"],
            client_ip=self.runtime.client_ip.resolve(scope),
            user_agent=(get_header(headers, b"user-agent") or b"").decode("latin-1"),
        )
        try:
            ctx.principal = await self.runtime.identity.authenticate(scope)
        except PrivacyError as error:
            self.runtime.metrics.refusals.labels(error.code).inc()
            await send_problem(send, error)
            return
        scope = dict(scope)
        scope[SCOPE_KEY] = ctx
        await self.runtime.api(scope, receive, send)

    async def _metrics(self, send: Send) -> None:
        if self._gauges is None:
            self._gauges = OperatorGauges(self.runtime.metrics.registry)
        if self.runtime.started:
            await self._gauges.refresh(self.runtime)
        body, content_type = self.runtime.metrics.render()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _start(self) -> str | None:
        """Start serving; the error the server must refuse to start with, if any. A store outage is
        not one: routes without a plan keep working and the others retry the start (503 meanwhile)."""
        try:
            await self.runtime.ensure_serving()
        except StoreUnreachable as exc:
            logger.warning(
                "started without the privacy store (%s): routes that need it answer 503 store_unavailable"
                " until it is reachable",
                exc,
            )
        except Exception as exc:  # reported to the server, which refuses to start
            return str(exc)
        return None

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        app_answered = False
        startup_error: str | None = None

        async def wrapped_receive() -> Message:
            nonlocal startup_error
            message = await receive()
            if message["type"] == "lifespan.startup":
                startup_error = await self._start()
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop_shop_work()  # before the shop closes what that work uses
            return message

        async def wrapped_send(message: Message) -> None:
            nonlocal app_answered
            app_answered = True
            kind = message["type"]
            if kind == "lifespan.startup.complete" and startup_error is not None:
                message = {"type": "lifespan.startup.failed", "message": startup_error}
            elif kind == "lifespan.shutdown.complete":
                await self.runtime.stop()
            await send(message)

        try:
            await self.app(scope, wrapped_receive, wrapped_send)
        except Exception:
            if app_answered:
                raise
            # The app does not speak lifespan (Django raises): answer it ourselves.
            await self._own_lifespan(receive, send, startup_error)
            return
        if not app_answered:
            await self._own_lifespan(receive, send, startup_error)

    async def _own_lifespan(self, receive: Receive, send: Send, startup_error: str | None) -> None:
        if not self.runtime.started and startup_error is None:
            # The startup message was not consumed by the wrapped receive: take it here.
            message = await receive()
            if message["type"] == "lifespan.startup":
                startup_error = await self._start()
        if startup_error is not None:
            await send({"type": "lifespan.startup.failed", "message": startup_error})
            return
        await send({"type": "lifespan.startup.complete"})
        while True:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _makes_coroutines(app: ASGIApp) -> bool:
    """Whether calling the app gives a coroutine: a coroutine function, or an object whose
    `__call__` is one (what servers read to pick ASGI 3)."""
    call = getattr(app, "__call__", None)  # noqa: B004 (the attribute itself is what servers read)
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)


def _awaited(app: ASGIApp) -> ASGIApp:
    """A coroutine function awaiting an app that hands back another kind of awaitable."""

    async def awaited(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    return awaited


def _bodiless(scope: Scope) -> bool:
    """Whether the request certainly has no body (`has_body`); a Content-Length that is not a number
    is not certain: the long path refuses it (400, audited)."""
    try:
        return not has_body(scope)
    except PrivacyError:
        return False


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """`send` with `extra` added to the start. A plain function handing back `send`'s awaitable (as the
    card guard's `send`): a message costs no coroutine of its own."""

    def sending(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*(message.get("headers") or []), *extra]}
        return send(message)

    return sending


class _Responder:
    """Per-request response handling: holds `start` back until the final headers are known."""

    def __init__(self, middleware: PrivacyMiddleware, plan: RoutePlan, ex: Exchange, send: Send, started: float):
        self.mw = middleware
        self.plan = plan
        self.ex = ex
        self.downstream = send
        self.began = started  # perf_counter() when the plan started (the plan_seconds histogram)
        self.start: Message | None = None
        self.mode = "pending"  # pass | buffer | drain
        self.chunks: list[bytes] = []
        self.size = 0
        self.refused = False
        self.started = False  # whether a response start went downstream
        self.media = ""  # the media type of the start's headers

    async def send(self, message: Message) -> None:
        try:
            kind = message["type"]
            if kind == "http.response.start":
                await self._on_start(message)
            elif kind == "http.response.body":
                if self.mode == "pass":
                    await self.downstream(message)
                elif self.mode == "buffer":
                    await self._on_body(message)
                # drain: the app's body is swallowed; the refusal was already sent
            elif self.mode != "drain":
                await self.downstream(message)  # trailers, pathsend, zerocopy, early hints
        except Exception as exc:
            if self.started:
                raise
            if isinstance(exc, PrivacyError):
                await self._refuse(exc.code, exc.message, exc.status, exc)
                return
            # Our own response handling failed before anything was sent: a problem, not the body.
            logger.error("privacy response handling failed (%s)", type(exc).__name__)
            await self._refuse(INTERNAL_ERROR.code, INTERNAL_ERROR.message, 500)

    async def _on_start(self, message: Message) -> None:
        ex = self.ex
        ex.status = int(message["status"])
        ex.response_headers = list(message.get("headers") or [])
        self.start = message
        headers = ex.response_headers
        encoding, content_type, length = first_values(headers, RESPONSE_START_HEADERS)  # one scan
        media = self.media = media_of(content_type)
        peek = (
            not self.plan.needs_response_json
            and self.plan.peeks_response_json
            and is_json_media_type(media)
            and encoding in (None, b"identity")
        )
        if peek and ex.ctx.method != "HEAD" and ex.status not in BODYLESS_STATUSES:
            self.mode = "buffer"
            return
        if not self.plan.needs_response_json or ex.ctx.method == "HEAD" or ex.status in BODYLESS_STATUSES:
            await self._run_hooks(self.plan.on_responses)
            if self.mode != "drain":
                self.mode = "pass"
                await self._send_start(changed=False)
            return
        if ex.status == 206 or (encoding not in (None, b"identity")):
            await self._refuse("response_not_filterable", "The shop's response cannot be filtered here.", 502)
        elif not is_json_media_type(media):
            if ex.status >= 400:
                # Keep the status the shop meant, never its body: it may carry personal data.
                await self._refuse("upstream_error", "The shop answered with an error.", ex.status)
            elif (media == "" and length in (b"0", None)) or 300 <= ex.status < 400:
                self.mode = "buffer"  # an empty body (no type, or a redirect's): check it really is empty
            else:
                await self._refuse("response_not_json", "The shop's response on this route is not JSON.", 502)
        else:
            if length is not None and length.isdigit() and int(length) > self.mw.settings.max_response_bytes:
                await self._refuse("response_too_large", "The shop's response is too large to filter.", 502)
            else:
                self.mode = "buffer"

    async def _on_body(self, message: Message) -> None:
        chunk = message.get("body", b"")
        if chunk:
            self.size += len(chunk)
            if self.size > self.mw.settings.max_response_bytes:
                self.chunks.clear()
                await self._refuse("response_too_large", "The shop's response is too large to filter.", 502)
                return
            self.chunks.append(chunk)
        if message.get("more_body", False):
            return
        body = b"".join(self.chunks)
        self.chunks.clear()
        ex = self.ex
        strict = self.plan.needs_response_json
        rewritten = None
        if body:
            if not is_json_media_type(self.media):  # the headers' media type, read at the start
                if strict:
                    await self._refuse("response_not_json", "The shop's response on this route is not JSON.", 502)
                    return
            else:
                reader = self.plan.response_bytes
                if reader is not None:
                    # the one reader of the body rewrites its bytes in one pass, or declines (None)
                    try:
                        rewritten = await reader.on_response_bytes(ex, body)
                    except PrivacyError as error:
                        self.mw.observe_plan_seconds(time.perf_counter() - self.began)
                        await self._refuse(error.code, error.message, error.status, error)
                        return
                if rewritten is None:
                    try:
                        ex.response_json = orjson.loads(body)
                        ex.response_has_json = True
                    except orjson.JSONDecodeError:
                        if strict:
                            await self._refuse("malformed_response", "The shop's response is not valid JSON.", 502)
                            return
        # once the reader gave the body, only the steps after it
        await self._run_hooks(self.plan.on_responses if rewritten is None else self.plan.on_responses_after_bytes)
        if self.mode == "drain":
            return
        if rewritten is not None:
            body = rewritten
        elif ex.response_changed:
            body = orjson.dumps(ex.response_json)
        await self._send_start(changed=ex.response_changed, length=len(body))
        self.mode = "pass"
        await self.downstream({"type": "http.response.body", "body": body, "more_body": False})

    async def _run_hooks(self, steps: tuple[Step, ...]) -> None:
        """The response steps left to run, then the plan's time observed."""
        try:
            for step in steps:
                await step.on_response(self.ex)
        except PrivacyError as error:
            await self._refuse(error.code, error.message, error.status, error)
        finally:
            self.mw.observe_plan_seconds(time.perf_counter() - self.began)

    def _send_start(self, *, changed: bool, length: int | None = None) -> Awaitable[None]:
        """The start with the plan's header edits, sent: a plain function handing back the next
        send's awaitable (no coroutine of its own)."""
        assert self.start is not None
        ex = self.ex
        # Output depends on who asks (a filtered answer): never let a shared cache serve it to
        # someone else. The plan prepared these edits (asgi/headers.ResponseEdits).
        message: dict[str, Any] = dict(self.start)
        message["headers"] = self.plan.response_edits.apply(
            ex.response_headers,
            ex.extra_headers,
            changed=changed,
            length=length if self.mode == "buffer" else None,
        )
        self.started = True
        return self.downstream(message)

    async def _refuse(self, code: str, message: str, status: int, error: PrivacyError | None = None) -> None:
        self.mode = "drain"
        self.refused = True
        self.chunks.clear()
        error = error or PrivacyError(code, message, status)
        self.ex.ctx.facts.refusal_code = error.code
        self.mw.runtime.metrics.refusals.labels(error.code).inc()
        self.started = True
        await send_problem(self.downstream, error, head=self.ex.ctx.method == "HEAD")
