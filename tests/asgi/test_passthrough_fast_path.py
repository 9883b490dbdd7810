"""A route without a plan, where no cookie or outbound gate applies, is one call to the app (its
`send` wrapped by the card sentinel on responses only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from privacy_middleware.asgi.card_responses import MaskingResponse
from privacy_middleware.context import current_scope
from privacy_middleware.fields import native
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

pytestmark = pytest.mark.anyio

POLICY = {
    "policy": {"name": "t", "version": "1", "effective_date": "2026-01-01"},
    "categories": {"user.name": {}},
    "purposes": {"order_fulfilment": {"legal_basis": "contract"}},
    "routes": [
        {"method": "GET", "path": "/orders/{id}", "response": {"fields": [{"select": "name", "category": "user.name"}]}}
    ],
}


async def _call(app: Any) -> tuple[Any, Any, Any]:
    seen: dict[str, Any] = {}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope=scope, send=send, context=current_scope.get())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/products", "headers": [], "query_string": b""}
    await app(inner)(scope, receive, send)
    assert sent[0]["status"] == 204
    # The card sentinel's wrapper (masking card numbers in JSON answers) must hand on to the server's own send:
    # the C guard where the extension is built, else the Python one.
    sentinel = getattr(seen["send"], "__self__", None) if native.card_send is None else seen["send"]
    if native.card_send is None:
        assert isinstance(sentinel, MaskingResponse)
    return getattr(sentinel, "downstream", None) is send, seen["scope"] is scope, seen["context"]


async def test_pass_through_hands_the_servers_own_send_and_scope_to_the_app(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    same_send, same_scope, context = await _call(lambda inner: PrivacyMiddleware(inner, runtime=runtime))
    assert (same_send, same_scope, context) == (True, True, None)


async def test_with_governed_cookies_pass_through_still_filters_set_cookie(tmp_path: Path) -> None:
    policy = {**POLICY, "tracking": {"cookies": [{"pattern": "_ga*", "purpose": "order_fulfilment"}]}}
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(policy))
    same_send, _, context = await _call(lambda inner: PrivacyMiddleware(inner, runtime=runtime))
    assert same_send is False and context is not None


async def test_a_repeated_unplanned_request_is_still_checked_and_a_planned_one_still_planned(tmp_path: Path) -> None:
    """The middleware remembers which (method, path) pairs have no plan: a repeat still has its JSON
    answer's card numbers masked, the same path under a planned method still runs its plan, and
    the remembered pairs stay bounded."""
    from privacy_middleware import middleware as mw_module

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    card = b'{"card":"4242424242424242","name":"Ada"}'

    async def shop(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": card})

    app = PrivacyMiddleware(shop, runtime=runtime)
    await runtime.ensure_started()
    try:

        async def ask(method: str, path: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(
                {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}, receive, send
            )
            body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
            return sent[0]["status"], body, list(sent[0].get("headers") or [])

        for _ in range(3):
            status, body, _ = await ask("DELETE", "/orders/7")  # no plan for DELETE
            assert status == 200 and b"4242424242424242" not in body and b"4242" in body
        status, _, headers = await ask("GET", "/orders/7")  # planned: its response plan runs, not the guard
        assert status == 200 and (b"cache-control", b"private") in headers  # the plan's own response edits
        for index in range(mw_module.UNPLANNED_KEPT + 5):
            assert (await ask("GET", f"/p/{index}"))[0] == 200
        assert 0 < len(app._unplanned) <= mw_module.UNPLANNED_KEPT
    finally:
        await runtime.stop()


@pytest.mark.parametrize("form", ["lists", "tuple", "generator", "generator of lists"])
async def test_the_card_guard_reads_every_spec_form_of_the_start_headers(tmp_path: Path, form: str) -> None:
    """ASGI allows any iterable of two-item iterables as headers: the native header scan declines
    what it does not read exactly (and never consumes a one-shot iterable), so a JSON answer with a
    card number is masked whatever form its start's headers take."""
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db", data_dir=tmp_path)
    runtime = Runtime(settings, policy=validate_policy(POLICY))
    pairs = [(b"Content-Type", b"application/json"), (b"x-shop", b"1")]

    def headers() -> Any:
        if form == "lists":
            return [list(pair) for pair in pairs]
        if form == "tuple":
            return tuple(pairs)
        if form == "generator":
            return (pair for pair in pairs)
        return ([name, value] for name, value in pairs)

    async def shop(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers()})
        await send({"type": "http.response.body", "body": b'{"card":"4242424242424242"}'})

    app = PrivacyMiddleware(shop, runtime=runtime)
    await runtime.ensure_started()
    try:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/products", "headers": [], "query_string": b""}
        await app(scope, receive, send)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        assert sent[0]["status"] == 200
        assert b"4242424242424242" not in body and b"4242" in body
    finally:
        await runtime.stop()


def _starlette_shop(received: list[bytes]) -> Any:
    """A Starlette shop whose planned order handler is also reached by another spelling (`/o/{ref}`)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def order(request: Request) -> Response:
        return JSONResponse({"name": "Ada", "card": "4242424242424242"})

    async def products(request: Request) -> Response:
        received.append(await request.body())
        return JSONResponse({"card": "4242424242424242"})

    methods = ["GET", "DELETE"]
    return Starlette(
        routes=[
            Route("/orders/{id}", order, methods=methods),
            Route("/o/{ref}", order, methods=methods),
            Route("/products", products, methods=[*methods, "POST"]),
        ]
    )


async def _ask(
    app: Any, method: str, path: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or [], "query_string": b""}
    await app(scope, receive, send)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], answer, list(sent[0].get("headers") or [])


def _exchange(method: str, path: str) -> tuple[dict[str, Any], Any, Any, list[dict[str, Any]]]:
    """A bodiless request's scope and receive, and a send that keeps what it is given (in the list)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    return scope, receive, send, sent


def _wrapped(tmp_path: Path, policy: dict[str, Any], shop: Any, name: str = "p") -> PrivacyMiddleware:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db", data_dir=tmp_path)
    return PrivacyMiddleware(shop, runtime=Runtime(settings, policy=validate_policy(policy)))


async def test_a_remembered_pass_through_never_covers_another_spelling_of_a_planned_route(tmp_path: Path) -> None:
    """A (method, path) pair goes straight to the app only when no route that runs a planned handler
    serves its method: `DELETE /o/7` does (no DELETE is planned), `GET /o/7` never does (it reaches
    the planned order handler, whose plan runs however often the pair was asked). What one middleware
    remembers is its own: another policy on the same app plans `DELETE /orders/{id}`, and there the
    same spelling is placed on that plan."""
    shop = _starlette_shop([])
    app = _wrapped(tmp_path, POLICY, shop)
    delete_plan = {
        **POLICY,
        "routes": [{**POLICY["routes"][0], "method": "DELETE"}],  # type: ignore[index]
    }
    other = _wrapped(tmp_path, delete_plan, shop, "q")
    await app.runtime.ensure_started()
    await other.runtime.ensure_started()
    try:
        for _ in range(3):
            status, body, headers = await _ask(app, "DELETE", "/o/7")
            assert status == 200 and b"4242424242424242" not in body and b"4242" in body
            assert (b"cache-control", b"private") not in headers  # no plan: the card guard only
        assert "DELETE" in app._passthrough["/o/7"]
        for _ in range(3):
            status, _, headers = await _ask(app, "GET", "/o/7")  # another spelling of the planned route
            assert status == 200 and (b"cache-control", b"private") in headers
            status, _, headers = await _ask(other, "DELETE", "/o/7")  # planned under the other policy
            assert status == 200 and (b"cache-control", b"private") in headers
        assert "GET" not in app._passthrough["/o/7"] and "/o/7" not in other._passthrough
        status, _, headers = await _ask(app, "DELETE", "/o/7")
        assert status == 200 and (b"cache-control", b"private") not in headers
    finally:
        await app.runtime.stop()
        await other.runtime.stop()


@pytest.mark.parametrize("guard", ["native", "python"])
async def test_a_remembered_pass_through_still_reads_and_checks_a_body(tmp_path: Path, guard: str) -> None:
    """After bodiless requests on a pair, one with a body still goes through the card sentinel: a
    card number in it is refused before the shop sees it, a Content-Length that is not a number is
    refused (400), and a Content-Length of 0 is no body."""
    if guard == "native" and native.bodiless_card_send is None:
        pytest.skip("the native extension is not built")
    received: list[bytes] = []
    app = _wrapped(tmp_path, POLICY, _starlette_shop(received))
    if guard == "python":
        app._bodiless_send = None
        app.card_send = None
    await app.runtime.ensure_started()
    try:
        for method in ("DELETE", "GET", "POST"):
            for _ in range(2):
                assert (await _ask(app, method, "/products"))[0] == 200
            assert (await _ask(app, method, "/products", headers=[(b"content-length", b"0")]))[0] == 200
            assert ("DELETE" in app._passthrough.get("/products", ())) is (guard == "native")
            card = b'{"card":"4242424242424242"}'
            json = [(b"content-type", b"application/json")]
            status, body, _ = await _ask(app, method, "/products", card, [*json, (b"content-length", b"27")])
            assert status == 422 and b"card_data_on_unprotected_route" in body
            status, body, _ = await _ask(app, method, "/products", card, [*json, (b"transfer-encoding", b"chunked")])
            assert status == 422
            status, body, _ = await _ask(app, method, "/products", card, [*json, (b"content-length", b"2x")])
            assert status == 400 and b"bad_content_length" in body
        assert all(card not in seen for seen in received)
    finally:
        await app.runtime.stop()


async def test_servers_take_the_middleware_for_an_asgi3_app(tmp_path: Path) -> None:
    """Servers pick the ASGI version by `app.__call__` (uvicorn and asgiref with asyncio's check,
    hypercorn with inspect's): a coroutine function, though calling the instance is a plain call."""
    import asyncio
    import inspect

    import uvicorn
    from asgiref.compatibility import guarantee_single_callable

    app = _wrapped(tmp_path, POLICY, _starlette_shop([]))
    assert inspect.iscoroutinefunction(app.__call__) and asyncio.iscoroutinefunction(app.__call__)
    assert guarantee_single_callable(app) is app
    config = uvicorn.Config(app, lifespan="off", log_level="critical")
    config.load()
    assert config.interface == "asgi3"


async def test_a_remembered_pass_through_hands_back_the_apps_own_awaitable(tmp_path: Path) -> None:
    """Once a pair is remembered, calling the middleware hands the server the app's own coroutine (no
    coroutine of the middleware's in between), and the answer is the same through `__call__`: the
    card number in the JSON answer masked either way."""
    shop = _starlette_shop([])
    app = _wrapped(tmp_path, POLICY, shop)
    await app.runtime.ensure_started()
    try:
        first = await _ask(app, "DELETE", "/products")  # no plan places DELETE
        assert first[0] == 200 and b"4242424242424242" not in first[1] and b"4242" in first[1]

        scope, receive, send, sent = _exchange("DELETE", "/products")
        served = app(scope, receive, send)
        remembered = native.pass_through is not None
        assert (served.cr_code is type(shop).__call__.__code__) is remembered  # type: ignore[attr-defined]
        await served
        assert sent[1]["body"] == first[1]
        sent.clear()
        await app.__call__(dict(scope), receive, send)  # what a server that reads `__call__` calls
        assert sent[1]["body"] == first[1]
    finally:
        await app.runtime.stop()


async def test_an_app_that_hands_back_another_awaitable_is_still_called_as_a_coroutine(tmp_path: Path) -> None:
    """Where the app's call gives an awaitable that is not a coroutine, the pass-through hands the
    server a coroutine awaiting it (a server may start the call as a task, which takes coroutines
    only); the answer is the same, its card number masked."""
    import asyncio
    import inspect

    shop = _starlette_shop([])

    class Awaitable_:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __await__(self) -> Any:
            return self.inner.__await__()

    class HandsBackAnAwaitable:
        """A middleware object whose plain `__call__` hands back an awaitable of its own."""

        def __init__(self) -> None:
            self.app = shop  # where the route identity finds the shop's router

        def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
            return Awaitable_(self.app(scope, receive, send))

    app = _wrapped(tmp_path, POLICY, HandsBackAnAwaitable())
    await app.runtime.ensure_started()
    try:
        for _ in range(3):
            scope, receive, send, sent = _exchange("DELETE", "/products")
            served = app(scope, receive, send)
            assert inspect.iscoroutine(served)
            await asyncio.ensure_future(served)
            assert sent[0]["status"] == 200 and b"4242424242424242" not in sent[1]["body"]
        assert "DELETE" in app._passthrough["/products"] or native.pass_through is None
    finally:
        await app.runtime.stop()
