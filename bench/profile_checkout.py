"""Where the checkout's time goes: the request of `bench_routes.py`'s checkout, profiled.

Modes (the same app, policy, token and 5 KB body as the routes bench; the shop answers `{"id":"ord_1"}`):

    .venv/bin/python bench/profile_checkout.py calls [N]    # Python and C calls per request (cProfile): deterministic
    .venv/bin/python bench/profile_checkout.py sample [N]   # CPU sampling (SIGPROF): share of each function, inclusive
    .venv/bin/python bench/profile_checkout.py loop N       # N requests, nothing else (for an external profiler)

Instruction counts by differencing two `loop` runs under callgrind were tried and are not usable
here: under valgrind's slowdown the start-up and the timer-driven background tasks (breach monitor,
erasure watch) vary by more than 200 requests cost. The call counts are the deterministic figure.
"""

from __future__ import annotations

import asyncio
import collections
import cProfile
import logging
import pstats
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).parent))
from bench_routes import checkout_body, make_settings
from common import RecordingApp, call, expect, probe

from privacy_middleware.demo.shop import DemoShop
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.runtime import Runtime

SRC = str(Path(__file__).parents[1] / "src" / "privacy_middleware") + "/"


def _name(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename.replace(SRC, '')}:{code.co_firstlineno}({code.co_name})"


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
            if mode == "loop":
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
    expect(chosen in ("calls", "sample", "loop"), "mode: calls | sample | loop")
    asyncio.run(main(chosen, int(sys.argv[2]) if len(sys.argv) > 2 else {"calls": 1000}.get(chosen, 20000)))
