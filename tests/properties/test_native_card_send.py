"""The response card guard's common case in C (`_native.card_send`, used by
`ResponseCardGuard.checking`) makes the decisions `MaskingResponse` makes: for any response (status,
method, Content-Type and Content-Encoding values, header forms including one-shot iterables, bodies
whole or in pieces, plain, compressed, with card numbers in any decimal digits, messages out of
order) the server's send receives the same messages, the app sees the same errors, and the same
maskings are audited. `_native.chain`, the awaitable that sends a held start and its body in turn,
is awaited as `await send(a); await send(b)` would be: suspensions pass through, errors and
cancellation reach the send in flight, and nothing after a failed send is sent."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy_middleware.asgi.card_responses import MaskingResponse, ResponseCardGuard
from privacy_middleware.fields import native
from privacy_middleware.policy.load import validate_policy
from support.audit_events import Sink
from support.native import needs_native

pytestmark = needs_native

POLICY = validate_policy(
    {
        "policy": {"name": "p", "version": "1", "effective_date": "2026-01-01"},
        "categories": {"user.id": {}},
        "purposes": {"payment": {"legal_basis": "contract"}},
    }
)
CONTENT_TYPES = [
    b"application/json",
    b"application/json; charset=utf-8",
    b"Application/JSON",
    b"application/problem+json",
    b"text/html",
    b"text/plain",
    b"",
]
CARD = "4111111111111111"
BODIES = [
    b'{"products":[]}',
    b'{"card":"4111111111111111"}',
    b'{"card":"4111 1111 1111 1111","n":1}',
    b'{"id":"123456789012"}',
    b'{"t":"th\xc3\xa9"}',
    ('{"card":"' + "".join(chr(0xFF10 + int(d)) for d in CARD) + '"}').encode(),
    ('{"card":"' + "".join(chr(0x0660 + int(d)) for d in CARD) + '"}').encode(),
    b'{"card":"\\u0034111111111111111"}',
    b"4111111111111111",
    b"",
    b"not json 4111111111111111",
]


@st.composite
def responses(draw: Any) -> tuple[str, list[dict[str, Any]], str, set[bytes]]:
    """(the request method, the app's messages, the headers' form, the Content-Type values the guard
    has already read)."""
    status = draw(st.sampled_from([100, 103, 200, 201, 204, 304, 404, 500, "200", 10**30]))
    headers: list[tuple[bytes, bytes]] = []
    content_type = draw(st.sampled_from([None, *CONTENT_TYPES]))
    if content_type is not None:
        headers.append((draw(st.sampled_from([b"content-type", b"Content-Type", b"CONTENT-TYPE"])), content_type))
    coding = draw(st.sampled_from([None, None, b"gzip", b"identity", b"", b"br", b"GZIP ", b"deflate"]))
    if coding is not None:
        headers.append((b"content-encoding", coding))
    if draw(st.booleans()):
        headers.append((b"content-length", b"12"))
    if draw(st.booleans()):
        headers.append((b"content-type", b"text/html"))  # a second one: the first counts
    headers = draw(st.permutations(headers)) if draw(st.booleans()) else headers
    start: dict[str, Any] = {"type": "http.response.start", "status": status}
    if draw(st.integers(0, 5)):
        start["headers"] = headers
    elif draw(st.booleans()):
        start["headers"] = None
    messages = [start]
    if status in (100, 103) and draw(st.booleans()):
        messages.append({"type": "http.response.start", "status": 200, "headers": headers})
    pieces = draw(st.lists(st.sampled_from(BODIES), min_size=0, max_size=3))
    compress = coding in (b"gzip", b"GZIP ") and draw(st.booleans())
    for index, piece in enumerate(pieces):
        body: Any = gzip.compress(piece) if compress else piece
        message: dict[str, Any] = {"type": "http.response.body"}
        if draw(st.integers(0, 6)):
            message["body"] = body
        elif draw(st.booleans()):
            message["body"] = bytearray(body)
        more = index < len(pieces) - 1
        if more or draw(st.booleans()):
            message["more_body"] = draw(st.sampled_from([True, 1])) if more else draw(st.sampled_from([False, 0, None]))
        messages.append(message)
    extra = draw(st.sampled_from([None, "http.response.trailers", "http.response.pathsend", "http.response.zerocopy"]))
    if extra is not None:
        messages.insert(draw(st.integers(0, len(messages))), {"type": extra})
    if draw(st.integers(0, 20)) == 0:
        messages.insert(draw(st.integers(0, len(messages))), ["not", "a", "dict"])  # type: ignore[arg-type]
    known = draw(st.sets(st.sampled_from(CONTENT_TYPES)))
    form = draw(st.sampled_from(["tuples", "lists", "tuple", "generator"]))
    return draw(st.sampled_from(["GET", "HEAD", "POST"])), messages, form, known


def _shaped(headers: Any, form: str) -> Any:
    if not isinstance(headers, list):
        return headers
    if form == "lists":
        return [list(pair) for pair in headers]
    if form == "tuple":
        return tuple(headers)
    if form == "generator":
        return (pair for pair in headers)
    return list(headers)


def _plain(message: Any) -> Any:
    """What the server's send saw, comparable: headers read once (a one-shot iterable as it was then)."""
    if isinstance(message, dict) and message.get("headers") is not None:
        return {**message, "headers": [tuple(pair) for pair in message["headers"]]}
    return message


async def _run(
    make: Callable[[ResponseCardGuard, dict[str, Any], Any], Callable[[Any], Awaitable[None]]],
    method: str,
    messages: list[Any],
    form: str,
    known: set[bytes],
) -> tuple[list[Any], list[str], list[Any]]:
    sink = Sink()
    guard = ResponseCardGuard(POLICY, sink, 1 << 20)
    for content_type in known:
        guard.is_json(content_type)
    seen: list[Any] = []

    async def server_send(message: Any) -> None:
        seen.append(_plain(message))
        await asyncio.sleep(0)

    send = make(guard, {"type": "http", "method": method, "path": "/p", "headers": []}, server_send)
    raised: list[str] = []
    for message in messages:
        if isinstance(message, dict) and "headers" in message:
            message = {**message, "headers": _shaped(message["headers"], form)}
        try:
            await send(message)
        except Exception as error:  # what the app's `await send(...)` would see
            raised.append(f"{type(error).__name__}: {error}")
    return seen, raised, [(event.kind, dict(event.detail), event.severity_id) for event in sink.emitted]


def _native_send(guard: ResponseCardGuard, scope: dict[str, Any], send: Any) -> Any:
    assert native.card_send is not None
    return native.card_send(guard.native_state, scope, send)


def _python_send(guard: ResponseCardGuard, scope: dict[str, Any], send: Any) -> Any:
    return MaskingResponse(guard, scope, send).send


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(responses())
def test_the_native_guard_decides_every_response_as_the_python_guard(
    response: tuple[str, list[dict[str, Any]], str, set[bytes]],
) -> None:
    method, messages, form, known = response
    with_native = asyncio.run(_run(_native_send, method, messages, form, known))
    python_only = asyncio.run(_run(_python_send, method, messages, form, known))
    assert with_native == python_only


def _record() -> tuple[list[Any], Callable[[Any], Awaitable[None]]]:
    seen: list[Any] = []

    async def send(message: Any) -> None:
        await asyncio.sleep(0)
        seen.append(message)

    return seen, send


def _counting(guard: ResponseCardGuard) -> list[Any]:
    handed: list[Any] = []
    resume = guard.resume

    def counted(scope: Any, send: Any, start: Any) -> Any:
        handed.append(start)
        return resume(scope, send, start)

    guard.native_state = (guard.native_state[0], counted)
    return handed


START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}


def test_a_clean_json_answer_is_decided_in_c_and_a_card_number_still_masked() -> None:
    async def main() -> None:
        sink = Sink()
        guard = ResponseCardGuard(POLICY, sink, 1 << 20)
        handed = _counting(guard)
        seen, server_send = _record()
        send = guard.checking({"type": "http", "method": "GET", "path": "/p"}, server_send)
        await send(START)  # the first Content-Type value is read by the Python guard, then kept
        await send({"type": "http.response.body", "body": b'{"ok":true}'})
        assert [m["type"] for m in seen] == ["http.response.start", "http.response.body"] and len(handed) == 1
        seen.clear()
        send = guard.checking({"type": "http", "method": "GET", "path": "/p"}, server_send)
        assert await send(START) is None and seen == []  # held
        await send({"type": "http.response.body", "body": b'{"ok":true}', "more_body": False})
        assert seen == [START, {"type": "http.response.body", "body": b'{"ok":true}', "more_body": False}]
        assert len(handed) == 1  # decided in C
        seen.clear()
        send = guard.checking({"type": "http", "method": "GET", "path": "/p"}, server_send)
        await send(START)
        await send({"type": "http.response.body", "body": b'{"card":"4111111111111111"}'})
        assert handed[-1] is START and len(handed) == 2  # the held start handed to the Python guard
        assert b"4111111111111111" not in seen[1]["body"] and seen[1]["body"].endswith(b'1111"}')
        assert len(sink.emitted) == 1

    asyncio.run(main())


def test_a_one_shot_header_iterable_is_not_read_in_c() -> None:
    async def main() -> None:
        guard = ResponseCardGuard(POLICY, Sink(), 1 << 20)
        guard.is_json(b"application/json")
        handed = _counting(guard)
        seen, server_send = _record()
        send = guard.checking({"type": "http", "method": "GET", "path": "/p"}, server_send)
        headers = iter([(b"content-type", b"application/json")])
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        assert handed == [None]  # handed over before anything was read
        await send({"type": "http.response.body", "body": b'{"card":"4111111111111111"}'})
        assert b"4111111111111111" not in seen[1]["body"] and seen[1]["body"].endswith(b'1111"}')

    asyncio.run(main())


def test_chain_sends_in_turn_and_passes_suspensions_through() -> None:
    async def main() -> None:
        seen, send = _record()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        class Later:
            """An awaitable that is not a coroutine: a send handing back a future's iterator."""

            def __await__(self) -> Any:
                return future.__await__()

        def mixed(message: Any) -> Any:
            if message == 1:
                loop.call_soon(future.set_result, None)
                return Later()
            return send(message)

        assert native.chain is not None
        await native.chain(mixed, 1, 2)
        assert future.done() and seen == [2]
        await native.chain(send)
        await native.chain(send, 3)
        assert seen == [2, 3]

    asyncio.run(main())


def _blocking_send(name: Callable[[Any], str]) -> tuple[Callable[[Any], Awaitable[None]], asyncio.Event, list[str]]:
    """A send that blocks until cancelled: the send, an event set once it is entered, and the list
    where it notes `cancelled <name(message)>` when the cancellation reaches it."""
    ended: list[str] = []
    entered = asyncio.Event()

    async def blocking(message: Any) -> None:
        try:
            entered.set()
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            ended.append(f"cancelled {name(message)}")
            raise

    return blocking, entered, ended


def test_chain_stops_at_a_failed_send_and_passes_cancellation_to_the_send_in_flight() -> None:
    async def main() -> None:
        assert native.chain is not None
        seen: list[Any] = []

        async def failing(message: Any) -> None:
            seen.append(message)
            await asyncio.sleep(0)
            raise OSError("gone")

        with pytest.raises(OSError, match="gone"):
            await native.chain(failing, 1, 2)
        assert seen == [1]

        with pytest.raises(TypeError, match="can't be used in 'await' expression"):
            await native.chain(lambda message: 5, 1, 2)

        blocking, entered, ended = _blocking_send(str)
        task = asyncio.ensure_future(native.chain(blocking, 1, 2))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ended == ["cancelled 1"]

        async def swallowed_twice(make: Callable[[Any], Awaitable[None]]) -> tuple[str, list[Any]]:
            swallowed: list[Any] = []

            async def swallowing(message: Any) -> None:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    swallowed.append(message)  # a send that ends normally: the next is sent

            task = asyncio.ensure_future(make(swallowing))
            for _ in range(2):
                await asyncio.sleep(0)
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return "cancelled", swallowed
            return "ended", swallowed

        async def awaited_in_turn(send: Any) -> None:
            await send(1)
            await send(2)

        chained = await swallowed_twice(lambda send: native.chain(send, 1, 2))  # type: ignore[misc]
        assert chained == await swallowed_twice(awaited_in_turn) == ("ended", [1, 2])

    asyncio.run(main())


def test_chain_close_closes_the_send_in_flight_and_sends_nothing_more() -> None:
    assert native.chain is not None
    closed: list[Any] = []
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)
        try:
            await asyncio.sleep(0)
        finally:
            closed.append(message)

    chain = native.chain(send, 1, 2)
    iterator = chain.__await__()
    next(iterator)  # suspended inside the first send
    iterator.close()
    assert sent == [1] and closed == [1]
    with pytest.raises(StopIteration):
        next(iterator)
    assert sent == [1]


@st.composite
def bodiless_requests(draw: Any) -> dict[str, Any]:
    """A request scope with any mix of Content-Length and Transfer-Encoding headers, any method."""
    names = [b"content-length", b"Content-Length", b"CONTENT-LENGTH", b"transfer-encoding", b"Transfer-Encoding"]
    values = [b"0", b"00", b"000", b"1", b"10", b"01", b"-0", b"+0", b" 0", b"0 ", b"", b"abc", b"0x0", b"chunked"]
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from([*names, b"content-type", b"x-length"]), st.sampled_from(values)), max_size=4
        )
    )
    scope: dict[str, Any] = {"type": "http", "method": draw(st.sampled_from(["GET", "HEAD", "OPTIONS", "DELETE"]))}
    scope["method"] = draw(st.sampled_from([scope["method"], "POST", "PUT", "PATCH", "get", "QUERY"]))
    form = draw(st.sampled_from(["list", "tuple", "lists", "none", "absent"]))
    if form == "list":
        scope["headers"] = pairs
    elif form == "tuple":
        scope["headers"] = tuple(pairs)
    elif form == "lists":
        scope["headers"] = [list(pair) for pair in pairs]
    elif form == "none":
        scope["headers"] = None
    return scope


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(bodiless_requests())
def test_the_native_pass_through_takes_only_requests_that_have_no_body(scope: dict[str, Any]) -> None:
    """`bodiless_card_send` gives the guard's send only for a request the card sentinel would not read
    (`has_body` says no body, without an error); for any other it gives None, and the middleware takes
    the path that reads and checks the body (or refuses a Content-Length that is not a number)."""
    from privacy_middleware.asgi.card_sentinel import has_body

    assert native.bodiless_card_send is not None
    guard = ResponseCardGuard(POLICY, Sink(), 1 << 20)
    sent = native.bodiless_card_send(guard.native_state, scope, _python_send)
    try:
        body = has_body(scope)
    except Exception:
        body = None  # refused on the long path
    if sent is not None:
        assert body is False and type(sent).__name__ == "CardSend"
    headers = scope.get("headers") or ()
    simple = all(isinstance(pair, tuple) for pair in headers) and all(
        value in (b"0", b"00", b"000", b"1", b"10", b"01", b"chunked") or name.lower() not in (b"content-length",)
        for name, value in headers
    )
    if simple and not any(name.lower() == b"transfer-encoding" for name, _ in headers) and body is False:
        assert sent is not None  # the common bodiless request is decided in C


def test_the_native_pass_through_declines_anything_but_a_dict_scope_with_a_str_method() -> None:
    assert native.bodiless_card_send is not None
    guard = ResponseCardGuard(POLICY, Sink(), 1 << 20)
    for scope in ({"method": b"GET", "headers": []}, {"headers": []}, {"method": "GET", "headers": b""}):
        assert native.bodiless_card_send(guard.native_state, scope, _python_send) is None
    assert native.bodiless_card_send(guard.native_state, {"method": "GET"}, _python_send) is not None
    with pytest.raises(TypeError):
        native.bodiless_card_send(guard.native_state, {"method": "GET"})


def _pass_through_send(guard: ResponseCardGuard, scope: dict[str, Any], send: Any) -> Any:
    """The guard's send as the middleware's pass-through makes it (the method read there, once)."""
    assert native.pass_through is not None
    made = native.pass_through((guard.native_state, {scope["path"]: {scope["method"]}}), scope, send)
    assert made is not None and type(made).__name__ == "CardSend"
    return made


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(responses())
def test_the_pass_through_guard_decides_every_response_as_the_python_guard(
    response: tuple[str, list[dict[str, Any]], str, set[bytes]],
) -> None:
    """The send `pass_through` makes knows the request's method from the start (HEAD answers go on
    untouched) and decides every response as the Python guard does."""
    method, messages, form, known = response
    method = "GET" if method == "POST" else method  # the pass-through takes bodiless requests only
    through = asyncio.run(_run(_pass_through_send, method, messages, form, known))
    python_only = asyncio.run(_run(_python_send, method, messages, form, known))
    assert through == python_only


@st.composite
def pass_through_calls(draw: Any) -> tuple[Any, dict[str, set[Any]]]:
    """A scope (of any type, path and method, some not str, some not a dict) and the remembered routes."""
    scope: Any = draw(bodiless_requests())
    scope["type"] = draw(st.sampled_from(["http", "http", "websocket", "lifespan", "HTTP", b"http"]))
    scope["path"] = draw(st.sampled_from(["/products", "/products/", "/o/7", b"/products"]))
    for key in ("type", "path", "method"):
        if draw(st.integers(0, 12)) == 0:
            del scope[key]
    routes: dict[str, set[Any]] = {}
    for path in draw(st.sets(st.sampled_from(["/products", "/o/7", "/other"]))):
        routes[path] = draw(st.sets(st.sampled_from(["GET", "HEAD", "DELETE", "OPTIONS", "POST", "get"]), max_size=3))
    if draw(st.integers(0, 10)) == 0:
        scope = list(scope.items())
    return scope, routes


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(pass_through_calls())
def test_the_pass_through_takes_exactly_a_remembered_bodiless_http_request(
    call: tuple[Any, dict[str, set[Any]]],
) -> None:
    """`pass_through` gives the guard's send only for an http scope whose path and method the
    middleware remembered and which `bodiless_card_send` takes; None for anything else."""
    scope, routes = call
    assert native.pass_through is not None and native.bodiless_card_send is not None
    guard = ResponseCardGuard(POLICY, Sink(), 1 << 20)
    made = native.pass_through((guard.native_state, routes), scope, _python_send)
    remembered = (
        isinstance(scope, dict)
        and scope.get("type") == "http"
        and type(scope.get("path")) is str
        and type(scope.get("method")) is str
        and scope["method"] in routes.get(scope["path"], ())
    )
    expected = remembered and native.bodiless_card_send(guard.native_state, scope, _python_send) is not None
    assert (made is not None) is expected
    if made is not None:
        assert type(made).__name__ == "CardSend"


def test_the_pass_through_refuses_a_malformed_state() -> None:
    assert native.pass_through is not None
    guard = ResponseCardGuard(POLICY, Sink(), 1 << 20)
    scope = {"type": "http", "method": "GET", "path": "/p", "headers": []}
    for state in ((guard.native_state, [("GET", "/p")]), (guard.native_state,), guard.native_state):
        with pytest.raises(TypeError):
            native.pass_through(state, scope, _python_send)
    with pytest.raises(TypeError):
        native.pass_through((guard.native_state, {"/p": {"GET"}}), scope)


def test_the_guards_own_awaitable_passes_cancellation_and_close_to_the_send_in_flight() -> None:
    """The held start and a clean first body go on through the guard itself as their awaitable (no
    other object made); cancelling the app's task reaches the server's send in flight and nothing
    after it is sent, and closing the awaitable closes that send, as with `native.chain`."""
    assert native.pass_through is not None
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    body = {"type": "http.response.body", "body": b'{"products":[]}'}
    scope = {"type": "http", "method": "GET", "path": "/p", "headers": []}

    def guarded(send: Any) -> Any:
        guard = ResponseCardGuard(POLICY, Sink(), 1 << 20)
        guard.is_json(b"application/json")
        made = native.pass_through((guard.native_state, {"/p": {"GET"}}), scope, send)  # type: ignore[misc]
        assert made is not None
        return made

    async def main() -> None:
        blocking, entered, ended = _blocking_send(lambda message: str(message["type"]))
        send = guarded(blocking)

        async def app() -> None:
            await send(start)
            awaitable = send(body)
            assert awaitable is send  # the guard is the awaitable of the start and the body
            await awaitable

        task = asyncio.ensure_future(app())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ended == ["cancelled http.response.start"]

    asyncio.run(main())

    sent: list[Any] = []
    closed: list[Any] = []

    async def pausing(message: Any) -> None:
        sent.append(message["type"])
        try:
            await asyncio.sleep(0)
        finally:
            closed.append(message["type"])

    send = guarded(pausing)
    held = send(start).__await__()
    with pytest.raises(StopIteration):
        next(held)  # the start is held: done at once, nothing sent
    iterator = send(body).__await__()
    next(iterator)  # suspended inside the start's send
    iterator.close()
    assert sent == closed == ["http.response.start"]
    with pytest.raises(StopIteration):
        next(iterator)
    assert sent == ["http.response.start"]
