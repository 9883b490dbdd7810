"""Where the checkout's time goes: the request of `bench_routes.py`'s checkout, profiled.

Modes (the same app, policy, token and 5 KB body as the routes bench; the shop answers `{"id":"ord_1"}`):

    .venv/bin/python bench/profile_checkout.py calls [N]    # Python and C calls per request (cProfile): deterministic
    .venv/bin/python bench/profile_checkout.py sample [N]   # CPU sampling (SIGPROF): share of each function, inclusive
    .venv/bin/python bench/profile_checkout.py loop N       # N requests, nothing else (for an external profiler)
    .venv/bin/python bench/profile_checkout.py stages [N]   # thread CPU per stage (timed wrappers), per request

`stages` times each stage of the request path with a wrapper around it (inclusive of what it calls,
thread CPU time; each wrapper adds its own call, under a microsecond) and prints µs per request,
after the added time of the unwrapped request over the bare shop in the same run.

Instruction counts by differencing two `loop` runs under callgrind were tried and are not usable
here: under valgrind's slowdown the start-up and the timer-driven background tasks (breach monitor,
erasure watch) vary by more than 200 requests cost. The call counts are the deterministic figure.
"""

from __future__ import annotations

import asyncio
import collections
import cProfile
import functools
import inspect
import logging
import pstats
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_routes import checkout_body, make_settings
from common import RecordingApp, call, expect, probe

from privacy_middleware import middleware
from privacy_middleware.demo.shop import DemoShop
from privacy_middleware.fields import engine, lazy
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.pipeline import (
    containment,
    disclose,
    disclosure_audit,
    free_text,
    native_request,
    protect,
    refusal_audit,
    shapes,
)
from privacy_middleware.runtime import Runtime

SRC = str(Path(__file__).parents[1] / "src" / "privacy_middleware") + "/"


def _name(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename.replace(SRC, '')}:{code.co_firstlineno}({code.co_name})"


def _timed(owner: Any, name: str, label: str, spent: collections.Counter[str]) -> None:
    """Replace `owner.name` by a wrapper adding its thread CPU time to `spent[label]`."""
    original = getattr(owner, name)
    clock = time.thread_time
    wrapper: Callable[..., Any]
    if asyncio.iscoroutinefunction(original):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return await original(*args, **kwargs)
            finally:
                spent[label] += clock() - started

    else:

        async def awaited(result: Any, started: float) -> Any:
            try:
                return await result
            finally:
                spent[label] += clock() - started

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                result = original(*args, **kwargs)
            except BaseException:
                spent[label] += clock() - started
                raise
            if inspect.isawaitable(result):  # a plain function handing back an awaitable: timed to its end
                return awaited(result, started)
            spent[label] += clock() - started
            return result

    setattr(owner, name, functools.wraps(original)(wrapper))


# (owner, attribute, label): the stages of a planned request, in the order they run; indented
# labels are inside the stage above them.
STAGES: list[tuple[Any, str, str]] = [
    (middleware.PrivacyMiddleware, "_run", "planned route (_run, all of it)"),
    (Runtime, "identity", ""),  # placeholder: the identity chain is bound per runtime below
    (containment.ContainmentGate, "before", "  containment gate"),
    (middleware.PrivacyMiddleware, "_rewrite_request", "  request body (_rewrite_request)"),
    (native_request, "forward", "    native request pass (all of it)"),
    (native_request._native, "request_pass", "      the C pass (validity, shape, places, card look)"),
    (native_request, "validate_field", "      field validators"),
    (native_request, "validate_card_number", "      field validators"),
    (engine.FieldEngine, "seal_texts", "      sealing (key look-up, AES-GCM, envelopes)"),
    (middleware, "load_strict", "    strict read (orjson + duplicate/depth verdict)"),
    (lazy, "decode_request", "    lazy reading (msgspec levels, raw parts prefiltered)"),
    (shapes.GuardRequestShape, "on_request", "    shape guard + card-code removal"),
    (free_text.FreeTextGuard, "on_request", "    free-text detectors"),
    (protect.ProtectRequestFields, "on_request", "    field protection"),
    (engine.FieldEngine, "_seal", "      sealing (key look-up, AES-GCM, envelopes)"),
    (middleware, "exempt_places", "    card sentinel: the rules' places"),
    (middleware, "scan", "    card sentinel: walk"),
    (lazy, "encode", "    body written back"),
    (middleware._Responder, "_on_start", "  response start"),
    (middleware._Responder, "_on_body", "  response body"),
    (disclose.DiscloseResponseFields, "on_response_bytes", "    disclosure (native pass, viewer)"),
    (disclosure_audit.DisclosureAudit, "on_response", "    disclosure audit"),
    (middleware._Responder, "_send_start", "    start with header edits"),
    (refusal_audit.RefusalAudit, "after", "  refusal audit (after)"),
]


async def stages(runtime: Runtime, request: Callable[[], Any], bare: Callable[[], Any], count: int) -> None:
    """The unwrapped request's added time over the bare shop, then each stage's CPU per request."""
    clock = time.thread_time
    routed: list[float] = []
    shop: list[float] = []
    for _ in range(max(count // 300, 5)):
        started = clock()
        for _ in range(300):
            await request()
        routed.append((clock() - started) / 300)
        started = clock()
        for _ in range(300):
            await bare()
        shop.append((clock() - started) / 300)
        await asyncio.sleep(0)
    added = statistics.median(routed) - statistics.median(shop)
    print(f"added time (median of {len(routed)} rounds of 300, unwrapped): {added * 1e6:.1f} us")
    spent: collections.Counter[str] = collections.Counter()
    for owner, name, label in STAGES:
        if owner is Runtime:
            _timed(runtime.identity, "authenticate", "  identity (cached token)", spent)
        else:
            _timed(owner, name, label, spent)
    for _ in range(300):
        await request()
    spent.clear()
    for i in range(count):
        await request()
        if i % 64 == 63:
            await asyncio.sleep(0)
    order = [label for _, _, label in STAGES if label] + ["  identity (cached token)"]
    for label in sorted(spent, key=order.index):
        print(f"{spent[label] / count * 1e6:8.2f} us  {label}")


async def main(mode: str, count: int) -> None:
    logging.getLogger("privacy_middleware").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        shop = DemoShop(data / "shop")
        runtime = Runtime(make_settings(data, shop))
        token = shop.token({"sub": "cus_0001"}, ttl=86400)
        await runtime.ensure_started()
        body = checkout_body()
        app = PrivacyMiddleware(RecordingApp(b'{"id":"ord_1"}'), runtime=runtime)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ]
        answer = await probe(app, "POST", "/checkout", body, headers)
        expect(answer.status == 200, f"checkout answered {answer.status}")
        request = call(app, "POST", "/checkout", body, headers)
        for _ in range(300):
            await request()
        try:
            if mode == "stages":
                await stages(
                    runtime, request, call(RecordingApp(b'{"id":"ord_1"}'), "POST", "/checkout", body, headers), count
                )
            elif mode == "loop":
                for i in range(count):
                    await request()
                    if i % 16 == 15:
                        await asyncio.sleep(0)
            elif mode == "calls":
                profile = cProfile.Profile()
                profile.enable()
                for _ in range(count):
                    await request()
                profile.disable()
                stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
                rows = sorted(
                    (
                        (calls / count, f"{file.replace(SRC, '')}:{line}({name})")
                        for (file, line, name), (_, calls, *_) in stats.items()
                    ),
                    reverse=True,
                )
                print(f"calls per request: {sum(n for n, _ in rows):.0f}")
                for n, where in rows[:40]:
                    print(f"{n:8.1f}  {where}")
            else:
                inclusive: collections.Counter[str] = collections.Counter()
                total = 0

                def sampled(signum: int, frame: FrameType | None) -> None:
                    nonlocal total
                    total += 1
                    seen = set()
                    while frame is not None:
                        name = _name(frame)
                        if name not in seen:
                            seen.add(name)
                            inclusive[name] += 1
                        frame = frame.f_back

                signal.signal(signal.SIGPROF, sampled)
                signal.setitimer(signal.ITIMER_PROF, 0.0001, 0.0001)
                for i in range(count):
                    await request()
                    if i % 16 == 15:
                        await asyncio.sleep(0)
                signal.setitimer(signal.ITIMER_PROF, 0, 0)
                print(f"samples: {total}; share of CPU time spent in each function and what it calls")
                for name, n in inclusive.most_common(60):
                    print(f"{100 * n / total:6.1f}%  {name}")
        finally:
            await runtime.audit.flush()
            await runtime.stop()


if __name__ == "__main__":
    chosen = sys.argv[1] if len(sys.argv) > 1 else "sample"
    expect(chosen in ("calls", "sample", "loop", "stages"), "mode: calls | sample | loop | stages")
    asyncio.run(main(chosen, int(sys.argv[2]) if len(sys.argv) > 2 else {"calls": 1000}.get(chosen, 20000)))
