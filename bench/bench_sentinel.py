"""The card-data sentinel's cost on unplanned routes, as a ratio to a bare pass-through of the same request.

Requests (POST of a JSON body to a route without a plan):
- 5 KB and 100 KB without a run of 13 digits: only the byte-level prefilter runs;
- the same sizes with digit runs that are not card numbers (order numbers): parsed and walked.
Responses (GET whose JSON answer comes from a route without a response plan):
- 5 KB and 100 KB without a digit run: the prefilter clears the body, which goes on as it was;
- with order numbers: parsed and walked, nothing masked, the body goes on as it was;
- with card numbers: masked and re-serialised.
- a bodiless GET with a small JSON answer (what every unplanned GET pays now).
The prefilters alone, in µs per KB over the 100 KB body without digit runs (target: under 2 µs per KB
for the card-number prefilter; the request one also looks for card-code key words), beside one
`bytes.translate` pass over the same bytes: the floor of any byte-level prefilter on this machine now.

Each row gives the time per request and its ratio to the bare app in the same run (alternating
rounds, so both see the same machine), and the sentinel's own cost per KB: (with - bare) / KB.
Every figure is preceded by a probe asserting the path it names: the body reached the app unchanged
(the sentinel passed it), the response left unchanged or masked as named, a card is refused.

Run: .venv/bin/python bench/bench_sentinel.py [--smoke]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from common import RecordingApp, Row, Table, call, compare, compare_sync, expect, is_smoke, probe

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.fields.card_sentinel import may_hold_card_data, may_hold_card_number
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import load_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

CARD = 4111111111111111


def body_of(size: int, *, digit_runs: bool, cards: bool = False) -> bytes:
    items = []
    i = 0
    while len(orjson.dumps({"items": items})) < size:
        item: dict[str, object] = {
            "sku": f"TEA-{i:03d}",
            "title": "Loose-leaf green tea, 100 g tin, organic",
            "qty": 1 + i % 3,
        }
        if digit_runs:
            item["order_number"] = f"{2026000000000000 + i}"  # 16 digits, not a card (no brand range / Luhn)
        if cards and i % 10 == 0:
            item["card"] = CARD
        items.append(item)
        i += 1
    return orjson.dumps({"items": items})


def json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


async def pair(
    table: Table, name: str, wrapped: object, bare: object, method: str, path: str, body: bytes, n: int, kb: float
) -> None:
    headers = json_headers(body) if body else None
    times = await compare(
        {"with": call(wrapped, method, path, body, headers), "bare": call(bare, method, path, body, headers)}, n
    )
    row = table.add(Row("sentinel", name, times["with"], times["bare"], "bare app"))
    if kb:
        extra = max(row.value - row.baseline, 0.0) / kb
        print(f"  {'':<50} {extra * 1e6:10.2f} µs per KB over the bare app", flush=True)


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
            iterations = 20 if smoke else 5_000
            answer = await probe(wrapped, "GET", "/products")
            expect(answer.status == 200 and answer.body == bare.response_body, "bodiless GET did not pass unchanged")
            await pair(
                table,
                "GET /products, no body, small JSON answer",
                wrapped,
                bare,
                "GET",
                "/products",
                b"",
                iterations,
                0,
            )
            for size in (5_000, 100_000):
                n = 20 if smoke else (2_000 if size == 5_000 else 200)
                for digit_runs in (False, True):
                    body = body_of(size, digit_runs=digit_runs)
                    kb = len(body) / 1024
                    expect(may_hold_card_data(body) is digit_runs, "the body does not take the path it names")
                    answer = await probe(wrapped, "POST", "/notes", body, json_headers(body))
                    expect(answer.status == 200 and bare.received == body, "the body did not reach the app unchanged")
                    label = "order numbers: parsed and walked" if digit_runs else "no digit run: prefilter only"
                    await pair(
                        table,
                        f"POST {len(body) // 1000} KB JSON, {label}",
                        wrapped,
                        bare,
                        "POST",
                        "/notes",
                        body,
                        n,
                        kb,
                    )
                bare.received = None
                for digit_runs, cards in ((False, False), (True, False), (True, True)):
                    body = body_of(size, digit_runs=digit_runs, cards=cards)
                    kb = len(body) / 1024
                    bare.response_body = body
                    answer = await probe(wrapped, "GET", "/report")
                    if cards:
                        expect(answer.status == 200 and str(CARD).encode() not in answer.body, "cards not masked")
                        expect(answer.body.count(b"\xe2\x80\xa21111") >= 1, "no masked card in the answer")
                        label = "card numbers: masked"
                    else:
                        expect(answer.status == 200 and answer.body == body, "the answer did not leave unchanged")
                        label = "order numbers: parsed, unchanged" if digit_runs else "no digit run: prefilter only"
                    await pair(
                        table,
                        f"GET answer {len(body) // 1000} KB JSON, {label}",
                        wrapped,
                        bare,
                        "GET",
                        "/report",
                        b"",
                        n,
                        kb,
                    )
                bare.response_body = b'{"ok":true}'
            body = body_of(100_000, digit_runs=False)
            kb = len(body) / 1024
            identity = bytes(range(256))
            times = compare_sync(
                {
                    "number": lambda: may_hold_card_number(body),
                    "data": lambda: may_hold_card_data(body),
                    "floor": lambda: body.translate(identity),
                },
                20 if smoke else 500,
            )
            table.add(
                Row(
                    "sentinel",
                    "card-number prefilter per KB (target < 2 µs)",
                    times["number"] / kb,
                    2e-6,
                    "2 µs/KB",
                    target=1,
                )
            )
            table.add(
                Row(
                    "sentinel",
                    "request prefilter per KB (numbers + card-code keys)",
                    times["data"] / kb,
                    2e-6,
                    "2 µs/KB",
                )
            )
            table.add(
                Row("sentinel", "one bytes.translate pass per KB (the floor)", times["floor"] / kb, 2e-6, "2 µs/KB")
            )
        finally:
            await runtime.stop()
    return table.rows


if __name__ == "__main__":
    import asyncio

    asyncio.run(main(is_smoke()))
