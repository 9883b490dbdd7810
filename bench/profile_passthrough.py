"""Where the pass-through's time goes: `bench_middleware.py`'s Starlette request, split into its steps.

Not a bench (no target): the bare shop, the middleware, and the middleware's pieces rebuilt from the
same parts in alternating rounds (thread CPU, median), each as added ns over the bare shop:

    .venv/bin/python bench/profile_passthrough.py [--smoke]

- an object whose plain `__call__` (a method written in Python) hands back the shop's awaitable:
  what calling a middleware object costs when its class's call is a Python function (the
  middleware's was one before `native.Front`);
- a `native.Front` armed with no state: its C call, handing every call to the shop as `serve`;
- a `native.Front` armed as the middleware arms itself, with the shop as its app: the C call, the
  pass-through decision (`_native.pass_through`: the remembered `(method, path)`, the check that the
  request has no body, the card guard's `send` made), and the guard on the start and the body.
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


class Front(native.Front):
    """A `native.Front` as the middleware is one (a Python subclass), armed with the given state."""

    def __init__(self, state: Any, app: Any) -> None:
        self.arm(state, app, app)


class HandsBack:
    """An object whose plain `__call__` hands back the shop's awaitable."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        app = self.app
        return app(scope, receive, send)


async def main(smoke: bool) -> None:
    logging.disable(logging.WARNING)  # the policy's 50 routes the shop does not have
    iterations, rounds = (20, 1) if smoke else (2_000, 30)
    expect(native.pass_through is not None, "the native extension is not built")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/b.db", data_dir=Path(tmp))
        runtime = Runtime(settings, policy=validate_policy(POLICY))
        shop = starlette_shop()
        middleware = PrivacyMiddleware(shop, runtime=runtime)
        await runtime.ensure_started()
        try:
            apps: dict[str, Any] = {
                "bare shop": shop,
                "middleware": middleware,
                "plain __call__ handing back the shop's": HandsBack(shop),
                "C front, every call to the shop": Front(None, shop),
                "C front, pass-through and card guard": Front(
                    (middleware.cards.native_state, {"/products": {"GET"}}), shop
                ),
            }
            for name, app in apps.items():
                answer = await probe(app, "GET", "/products")
                expect(answer.status == 200 and answer.body == b'{"products":[]}', f"{name}: the shop did not answer")
            taken = "GET" in middleware._passthrough.get("/products", ())
            expect(taken, "the middleware did not take its pass-through")
            got = await compare({name: call(app, "GET", "/products") for name, app in apps.items()}, iterations, rounds)
        finally:
            await runtime.stop()
    base = got["bare shop"]
    print(f"profile_passthrough: python {sys.version.split()[0]}, {iterations} calls x {rounds} rounds, {CLOCK_NAME}")
    for name, seconds in got.items():
        print(f"  {name:<44} {seconds * 1e6:8.2f} µs  added {(seconds - base) * 1e9:6.0f} ns  {seconds / base:.3f}x")
    split = {
        "call through a class's plain __call__": got["plain __call__ handing back the shop's"] - base,
        "call through the C front": got["C front, every call to the shop"] - base,
        "C pass-through decision, guard and messages": got["C front, pass-through and card guard"]
        - got["C front, every call to the shop"],
        "the middleware's own rest": got["middleware"] - got["C front, pass-through and card guard"],
    }
    for name, seconds in split.items():
        print(f"  split: {name:<42} {seconds * 1e9:6.0f} ns")


if __name__ == "__main__":
    asyncio.run(main(is_smoke()))
