"""How cost grows: filter time per order (10 to 5,000 orders) and protect time per KB (1 KB to 1 MB).

Filtering: GET /orders disclosed to the parcel carrier (demo policy), middleware time (route - bare
app) per record, against orjson parse + dump of the same body per record. Protecting: POST /checkout
with the 8 protected fields and a growing list of order lines, middleware time per KB, against
orjson parse + dump per KB. Flat per-record / per-KB figures mean the cost grows linearly; outside
smoke mode the bench fails unless the per-order cost at 5,000 orders is within 2x of that at 50,
and the per-KB cost at 1 MB within 2x of that at 100 KB (the fixed per-request cost fades below).

Run: .venv/bin/python bench/bench_scaling.py [--smoke]
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_routes import make_settings, orders_body
from common import RecordingApp, Row, Table, as_async, call, compare, expect, is_smoke, minimal_app_factory, probe

from privacy_middleware.demo.shop import DemoShop
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.runtime import Runtime


def checkout_of_size(target: int) -> bytes:
    """A checkout with the 8 protected fields and order lines up to about `target` bytes."""
    base = {
        "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
        "payment": {"card": {"number": "4242424242424242", "cvv": "737", "exp_month": 12, "exp_year": 2030}},
        "shipping_address": {"name": "Ada Lovelace", "street": "12 Marylebone Road", "phone": "+44 20 7946 0018"},
        "billing_address": {"name": "Ada Lovelace", "street": "12 Marylebone Road"},
        "items": [],
    }
    line = {"sku": "TEA-001", "qty": 1, "title": "Loose-leaf green tea, 100 g tin, organic"}
    per_line = len(orjson.dumps(line)) + 1
    base["items"] = [dict(line, sku=f"TEA-{i:06d}") for i in range(max(0, (target - 330) // per_line))]
    card = base["payment"]["card"]  # type: ignore[index]
    card["holder"] = "Ada Lovelace"
    return orjson.dumps(base)


async def main(smoke: bool = False) -> list[Row]:
    repeats = 1 if smoke else 5
    table = Table()
    logging.getLogger("privacy_middleware").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        shop = DemoShop(data / "shop")
        runtime = Runtime(make_settings(data, shop).model_copy(update={"max_body_bytes": 4 * 1024 * 1024}))
        await runtime.ensure_started()
        try:
            logistics = shop.token({"sub": "logistics-co", "recipient": "logistics", "purpose": "delivery"}, 86400)
            customer = shop.token({"sub": "cus_0001"}, 86400)
            auth = [(b"authorization", f"Bearer {logistics}".encode())]
            print(f"bench_scaling: python {sys.version.split()[0]}; median of {repeats} repeats")
            per_order: dict[int, float] = {}
            per_kb: dict[int, float] = {}
            for count in (10, 50, 500, 5000):
                body = orders_body(count)
                bare = minimal_app_factory(body)
                app = PrivacyMiddleware(bare, runtime=runtime)
                answer = await probe(app, "GET", "/orders", b"", auth)
                seen = orjson.loads(answer.body)["orders"]
                expect(answer.status == 200 and len(seen) == count, f"{count} orders not disclosed")
                expect(all(not o["customer"] for o in seen), "the carrier saw the customer")
                n = 5 if smoke else max(3, 20_000 // count)
                got = await compare(
                    {
                        "routed": call(app, "GET", "/orders", b"", auth),
                        "base": call(bare, "GET", "/orders", b"", auth),
                        "floor": as_async(lambda b=body: orjson.dumps(orjson.loads(b))),  # type: ignore[misc]
                    },
                    n,
                    repeats,
                )
                routed, base, floor = got["routed"], got["base"], got["floor"]
                await runtime.audit.flush()
                per_order[count] = (routed - base) / count
                table.add(
                    Row(
                        "scaling",
                        f"filter {count} orders: per order",
                        (routed - base) / count,
                        floor / count,
                        "orjson per order",
                    )
                )
            for size in (1024, 10 * 1024, 100 * 1024, 1024 * 1024):
                body = checkout_of_size(size)
                bare_shop = RecordingApp(b'{"id":"ord_1"}')
                app = PrivacyMiddleware(bare_shop, runtime=runtime)
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"authorization", f"Bearer {customer}".encode()),
                ]
                answer = await probe(app, "POST", "/checkout", body, headers)
                expect(answer.status == 200, f"checkout of {len(body)} bytes answered {answer.status}")
                stored = orjson.loads(bare_shop.received or b"{}")
                expect(stored["payment"]["card"]["number"].startswith("pe1."), "the card reached the shop in clear")
                n = 5 if smoke else max(3, 2_000_000 // len(body))
                got = await compare(
                    {
                        "routed": call(app, "POST", "/checkout", body, headers),
                        "base": call(bare_shop, "POST", "/checkout", body, headers),
                        "floor": as_async(lambda b=body: orjson.dumps(orjson.loads(b))),  # type: ignore[misc]
                    },
                    n,
                    repeats,
                )
                routed, base, floor = got["routed"], got["base"], got["floor"]
                kb = len(body) / 1024
                per_kb[size] = (routed - base) / kb
                table.add(
                    Row(
                        "scaling",
                        f"protect {kb:,.0f} KB checkout: per KB",
                        (routed - base) / kb,
                        floor / kb,
                        "orjson per KB",
                    )
                )
            await runtime.audit.flush()
            expect(runtime.audit.metrics.dropped.total == 0, "audit events dropped")
            if not smoke:
                growth = per_order[5000] / per_order[50]
                print(f"per order, 5,000 vs 50 orders: {growth:.2f}x; per KB, 1 MB vs 100 KB: ", end="")
                kb_growth = per_kb[1024 * 1024] / per_kb[100 * 1024]
                print(f"{kb_growth:.2f}x (flat: <= 2x)")
                expect(growth <= 2.0, f"filtering cost per order grows: {growth:.2f}x from 50 to 5,000 orders")
                expect(kb_growth <= 2.0, f"protect cost per KB grows: {kb_growth:.2f}x from 100 KB to 1 MB")
        finally:
            await runtime.stop()
    return table.rows


if __name__ == "__main__":
    asyncio.run(main(is_smoke()))
