"""`native.Front`, the middleware's base class: calling an instance is one C call that takes the
pass-through for a remembered bodiless request and hands every other call to `serve` unchanged;
without the extension every call is `serve`'s, and the middleware still answers."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path
from typing import Any

import pytest

from privacy_middleware.asgi.card_responses import ResponseCardGuard
from privacy_middleware.fields import native
from privacy_middleware.policy.load import validate_policy
from support.audit_events import Sink
from support.native import needs_native

POLICY = validate_policy(
    {
        "policy": {"name": "p", "version": "1", "effective_date": "2026-01-01"},
        "categories": {"user.id": {}},
        "purposes": {"payment": {"legal_basis": "contract"}},
    }
)


class Front(native.Front):
    """A subclass, as the middleware is one: what reached `serve` and the app, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def serve(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("serve", args, kwargs))
        return "served"

    def app(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("app", args, kwargs))
        return "app"


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": headers or [], "query_string": b""}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


@needs_native
def test_a_call_before_arm_is_refused_and_arm_takes_only_what_it_decides_with() -> None:
    front = Front()
    with pytest.raises(TypeError, match="before arm"):
        front(_scope("GET", "/p"), _receive, _send)
    with pytest.raises(TypeError, match="state"):
        front.arm(({}, None), front.app, front.serve)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        front.arm(None, "not callable", front.serve)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        front.arm(None, front.app)  # type: ignore[call-arg]
    assert front.calls == []


@needs_native
def test_only_a_remembered_bodiless_request_takes_the_pass_through() -> None:
    """The remembered GET goes to the app with the card guard's send (which hands on to the
    server's); a request with a body, another path, another kind of scope, or a call with other
    arguments goes to `serve` with exactly the arguments it was given."""
    front = Front()
    guard = ResponseCardGuard(POLICY, Sink(), 1 << 20)
    front.arm((guard.native_state, {"/p": {"GET"}}), front.app, front.serve)

    remembered = _scope("GET", "/p")
    assert front(remembered, _receive, _send) == "app"
    kind, args, kwargs = front.calls.pop()
    assert kind == "app" and args[0] is remembered and args[1] is _receive and not kwargs
    assert args[2] is not _send and args[2].downstream is _send

    with_body = _scope("GET", "/p", [(b"content-length", b"5")])
    others: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((with_body, _receive, _send), {}),
        ((_scope("POST", "/p"), _receive, _send), {}),
        ((_scope("GET", "/q"), _receive, _send), {}),
        (({**remembered, "type": "websocket"}, _receive, _send), {}),
        ((remembered, _receive), {}),
        ((remembered, _receive, _send), {"extra": 1}),
        ((), {}),
    ]
    for args, kwargs in others:
        assert front(*args, **kwargs) == "served"
        assert front.calls.pop() == ("serve", args, kwargs)
    assert front.calls == []


@needs_native
def test_without_a_state_every_call_goes_to_serve() -> None:
    front = Front()
    front.arm(None, front.app, front.serve)
    scope = _scope("GET", "/p")
    assert front(scope, _receive, _send) == "served"
    assert front.calls == [("serve", (scope, _receive, _send), {})]


@needs_native
def test_an_app_that_arms_the_front_again_during_its_call_is_still_answered() -> None:
    """The app and `serve` are held for the length of the call: arming again inside it frees neither."""
    front = Front()
    guard = ResponseCardGuard(POLICY, Sink(), 1 << 20)

    def app(*args: Any) -> str:
        front.arm(None, front.app, front.serve)
        return "first app"

    def serve(*args: Any) -> str:
        front.arm((guard.native_state, {"/p": {"GET"}}), app, front.serve)
        return "first serve"

    front.arm((guard.native_state, {"/p": {"GET"}}), app, serve)
    assert front(_scope("GET", "/p"), _receive, _send) == "first app"
    front.arm(None, app, serve)
    assert front(_scope("GET", "/p"), _receive, _send) == "first serve"
    assert front(_scope("GET", "/p"), _receive, _send) == "first app"


@needs_native
def test_a_front_whose_serve_is_its_own_method_is_collected() -> None:
    """`serve` is a bound method of the instance (a cycle through the C fields): the collector
    sees it and frees both."""
    front = Front()
    front.arm(None, front.app, front.serve)
    gone = weakref.ref(front)
    del front
    gc.collect()
    assert gone() is None


def test_without_the_extension_the_middleware_serves_every_request(tmp_path: Path) -> None:
    """No `_native` module (an install without a compiler): the base is the Python front, and a
    request on a route without a plan still gets its answer, its card number masked by the
    Python guard."""
    script = tmp_path / "python_only.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys
            from pathlib import Path
            sys.modules["privacy_middleware.fields._native"] = None  # the import fails
            from privacy_middleware.fields import native
            from privacy_middleware.middleware import PrivacyMiddleware
            from privacy_middleware.policy.load import validate_policy
            from privacy_middleware.runtime import Runtime
            from privacy_middleware.settings import Settings

            async def shop(scope, receive, send):
                await send({{"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]}})
                await send({{"type": "http.response.body", "body": b'{{"card":"4242424242424242"}}'}})

            async def main():
                policy = validate_policy({{"policy": {{"name": "p", "version": "1", "effective_date": "2026-01-01"}},
                                          "categories": {{"user.id": {{}}}},
                                          "purposes": {{"payment": {{"legal_basis": "contract"}}}}}})
                data = Path({str(tmp_path)!r})
                settings = Settings(database_url=f"sqlite+aiosqlite:///{{data}}/p.db", data_dir=data)
                app = PrivacyMiddleware(shop, runtime=Runtime(settings, policy=policy))
                await app.runtime.ensure_started()
                try:
                    for _ in range(3):
                        sent = []

                        async def receive():
                            return {{"type": "http.request", "body": b"", "more_body": False}}

                        async def send(message):
                            sent.append(message)

                        scope = {{"type": "http", "method": "GET", "path": "/products", "headers": [],
                                 "query_string": b""}}
                        await app(scope, receive, send)
                        print(sent[0]["status"], sent[1]["body"])
                finally:
                    await app.runtime.stop()
                print("front", native.AVAILABLE, type(app).__mro__[1].__name__)

            asyncio.run(main())
            """
        )
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    lines = run.stdout.splitlines()
    assert lines[-1] == "front False _ServeFront"
    answers = lines[:-1]
    assert len(answers) == 3 and all(line.startswith("200 ") for line in answers)
    assert all("4242424242424242" not in line and "4242" in line for line in answers)


def test_the_python_front_takes_no_pass_through_state() -> None:
    front = native._ServeFront()
    with pytest.raises(TypeError, match="no pass-through"):
        front.arm(({}, {}), lambda *a: None, lambda *a: None)  # type: ignore[arg-type]
    front.arm(None, lambda *a: None, lambda *a, **k: (a, k))
    assert front(1, 2, x=3) == ((1, 2), {"x": 3})
