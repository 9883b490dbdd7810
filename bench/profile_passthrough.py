"""Where the pass-through's time goes: `bench_middleware.py`'s Starlette request, split into its steps.

Not a bench (no target): the bare shop, the middleware, and the middleware's pieces rebuilt from the
same parts in alternating rounds (thread CPU, median), each as added ns over the bare shop:

    .venv/bin/python bench/profile_passthrough.py [--smoke]

- an `async def` that awaits the shop: one coroutine frame;
- an object whose `async def __call__` awaits the shop: the frame and a call through a class's
  `__call__` (what a server pays to call any middleware object);
- that object doing the pass-through's own steps (the `(method, path)` set lookup and the C call that
  checks for a body and makes the card guard's `send`), handing the shop the server's `send`;
- the same, handing the shop the guard's `send` (the start held, the body scanned, both sent).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_middleware import POLICY, starlette_shop
from common import CLOCK_NAME, call, compare, expect, is_smoke, probe

from privacy_middleware.fields import native
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings


class Steps:
    """The pass-through's steps alone, in an object called as the middleware is."""

    def __init__(self, app: Any, middleware: PrivacyMiddleware, guard: bool) -> None:
        self.app = app
        self.passthrough = {("GET", "/products")}
        self.bodiless = native.bodiless_card_send
        self.state = middleware.cards.native_state
        self.guard = guard

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        key = (scope["method"], scope["path"])
        if key in self.passthrough:
            assert self.bodiless is not None
            guarded = self.bodiless(self.state, scope, send)
            if guarded is not None:
                await self.app(scope, receive, guarded if self.guard else send)


class Awaits:
    """An object whose `__call__` only awaits the shop."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


async def main(smoke: bool) -> None:
    logging.disable(logging.WARNING)  # the policy's 50 routes the shop does not have
    iterations, rounds = (20, 1) if smoke else (2_000, 30)
    expect(native.bodiless_card_send is not None, "the native extension is not built")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/b.db", data_dir=Path(tmp))
        runtime = Runtime(settings, policy=validate_policy(POLICY))
        shop = starlette_shop()
        middleware = PrivacyMiddleware(shop, runtime=runtime)
        await runtime.ensure_started()
        try:

            async def frame(scope: Any, receive: Any, send: Any) -> None:
                await shop(scope, receive, send)

            apps: dict[str, Any] = {
                "bare shop": shop,
                "middleware": middleware,
                "async def awaiting the shop": frame,
                "object's async __call__ awaiting the shop": Awaits(shop),
                "pass-through steps, server's send": Steps(shop, middleware, guard=False),
                "pass-through steps, card guard's send": Steps(shop, middleware, guard=True),
            }
            for name, app in apps.items():
                answer = await probe(app, "GET", "/products")
                expect(answer.status == 200 and answer.body == b'{"products":[]}', f"{name}: the shop did not answer")
            expect(("GET", "/products") in middleware._passthrough, "the middleware did not take its pass-through")
            got = await compare({name: call(app, "GET", "/products") for name, app in apps.items()}, iterations, rounds)
        finally:
            await runtime.stop()
    base = got["bare shop"]
    print(f"profile_passthrough: python {sys.version.split()[0]}, {iterations} calls x {rounds} rounds, {CLOCK_NAME}")
    for name, seconds in got.items():
        print(f"  {name:<44} {seconds * 1e6:8.2f} µs  added {(seconds - base) * 1e9:6.0f} ns  {seconds / base:.3f}x")
    split = {
        "coroutine frame": got["async def awaiting the shop"] - base,
        "call through a class's __call__": got["object's async __call__ awaiting the shop"]
        - got["async def awaiting the shop"],
        "set lookup + C body check and guard made": got["pass-through steps, server's send"]
        - got["object's async __call__ awaiting the shop"],
        "card guard on the two messages": got["pass-through steps, card guard's send"]
        - got["pass-through steps, server's send"],
        "the middleware's own rest": got["middleware"] - got["pass-through steps, card guard's send"],
    }
    for name, seconds in split.items():
        print(f"  split: {name:<42} {seconds * 1e9:6.0f} ns")


if __name__ == "__main__":
    asyncio.run(main(is_smoke()))
