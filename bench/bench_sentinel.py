"""The card-data sentinel's cost on unplanned routes, as a ratio to a bare pass-through of the same request.

- a POST of a 5 KB and a 100 KB JSON body without a run of 13 digits (only the byte-level prefilter runs);
- the same sizes with digit runs that are not card numbers (order numbers: the body is parsed and walked);
- a bodiless GET on an unplanned route (the sentinel only looks at the headers);
- the prefilter alone, in µs per KB (target: under 2 µs per KB).

The baseline is the same request to the same minimal app without the middleware. Every figure is
preceded by a probe asserting the request reached the app with its body unchanged (so the sentinel
passed it), and one asserting a body with a card number is refused (so the sentinel is on).

Run: .venv/bin/python bench/bench_sentinel.py [--smoke]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from common import RecordingApp, Row, Table, call, expect, is_smoke, measure, measure_sync, probe

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.fields.card_sentinel import may_hold_card_data
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import load_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings


def body_of(size: int, *, digit_runs: bool) -> bytes:
    items = []
    i = 0
    while len(orjson.dumps({"items": items})) < size:
        item = {"sku": f"TEA-{i:03d}", "title": "Loose-leaf green tea, 100 g tin, organic", "qty": 1 + i % 3}
        if digit_runs:
            item["order_number"] = f"{2026000000000000 + i}"  # 16 digits, not a card (no brand range / Luhn)
        items.append(item)
        i += 1
    return orjson.dumps({"items": items})


async def main(smoke: bool = False) -> list[Row]:
    table = Table()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/b.db", data_dir=Path(tmp))
        bare = RecordingApp()
        runtime = Runtime(settings, policy=load_policy(demo_policy_path()))
        wrapped = PrivacyMiddleware(bare, runtime=runtime)
        await runtime.ensure_started()
        try:
            card = orjson.dumps({"memo": "4242 4242 4242 4242"})
            refused = await probe(wrapped, "POST", "/notes", card, json_headers(card))
            expect(refused.status == 422, f"a card on an unplanned route answered {refused.status}")
            iterations = 20 if smoke else 20_000
            answer = await probe(wrapped, "GET", "/products")
            expect(answer.status == 200 and bare.received == b"", "bodiless GET did not reach the app")
            table.add(
                Row(
                    "sentinel",
                    "GET /products, no body",
                    await measure(call(wrapped, "GET", "/products"), iterations),
                    await measure(call(bare, "GET", "/products"), iterations),
                    "bare app",
                )
            )
            for size in (5_000, 100_000):
                n = 20 if smoke else (5_000 if size == 5_000 else 500)
                for digit_runs in (False, True):
                    body = body_of(size, digit_runs=digit_runs)
                    expect(may_hold_card_data(body) is digit_runs, "the body does not take the path it names")
                    headers = json_headers(body)
                    answer = await probe(wrapped, "POST", "/notes", body, headers)
                    expect(answer.status == 200 and bare.received == body, "the body did not reach the app unchanged")
                    label = "order numbers: parsed and walked" if digit_runs else "no digit run: prefilter only"
                    table.add(
                        Row(
                            "sentinel",
                            f"POST {len(body) // 1000} KB JSON, {label}",
                            await measure(call(wrapped, "POST", "/notes", body, headers), n),
                            await measure(call(bare, "POST", "/notes", body, headers), n),
                            "bare app",
                        )
                    )
            body = body_of(100_000, digit_runs=False)
            per_kb = measure_sync(lambda: may_hold_card_data(body), 20 if smoke else 2_000) / (len(body) / 1024)
            table.add(Row("sentinel", "prefilter per KB (target < 2 µs)", per_kb, 2e-6, "2 µs/KB target", target=1))
        finally:
            await runtime.stop()
    return table.rows


def json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


if __name__ == "__main__":
    import asyncio

    asyncio.run(main(is_smoke()))
