"""What each capability costs on its own route, against the floor measured in the same run.

- checkout: a 5 KB body with 8 protected fields (card encrypted + companions, CVV stripped, 6 address
  fields encrypted) vs the floor: orjson parse + dump + 8 raw AES-256-GCM calls;
- filtering: 50 orders (~25 KB) disclosed to the logistics recipient vs orjson parse + dump of the body;
- tracking: a consented tracking event (signed cookie, no database read) vs a bare pass-through;
- audit: a filtered customer read with the audit writer on vs off.

Run: .venv/bin/python bench/bench_routes.py [--smoke]   (in-process, ASGI apps called directly; demo policy)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).parent))
from common import RecordingApp, Row, Table, call, compare, expect, is_smoke, measure, minimal_app_factory, probe

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.demo.shop import DemoShop
from privacy_middleware.fields import native
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.pipeline import native_request
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import JwtSettings, Settings
from privacy_middleware.store.consent_records import Holder

ITERATIONS = 300  # per round; rounds alternate between the figures compared


def checkout_body() -> bytes:
    lines = [
        {"sku": f"TEA-{i:03d}", "qty": 1 + i % 3, "title": "Loose-leaf green tea, 100 g tin, organic"}
        for i in range(50)
    ]
    return orjson.dumps(
        {
            "items": lines,
            "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
            "payment": {
                "card": {
                    "number": "4242424242424242",
                    "cvv": "737",
                    "exp_month": 12,
                    "exp_year": 2030,
                    "holder": "Ada Lovelace",
                }
            },
            "shipping_address": {
                "name": "Ada Lovelace",
                "street": "12 Marylebone Road",
                "city": "London",
                "postal_code": "NW1 5LR",
                "country": "GB",
                "phone": "+44 20 7946 0018",
            },
            "billing_address": {
                "name": "Ada Lovelace",
                "street": "12 Marylebone Road",
                "city": "London",
                "postal_code": "NW1 5LR",
                "country": "GB",
            },
            "note": "Please ring twice.",
        }
    )


def orders_body(n: int = 50) -> bytes:
    orders = []
    for i in range(n):
        orders.append(
            {
                "id": f"ord_{i:06d}",
                "customer_id": f"cus_{i % 7:04d}",
                "status": "paid",
                "total": 17.0,
                "currency": "EUR",
                "created_at": "2026-11-01T10:00:00+00:00",
                "items": [{"sku": "TEA-001", "qty": 2}],
                "customer": {"email": f"c{i}@example.com", "name": "Ada Lovelace"},
                "shipping_address": {
                    "name": "Ada Lovelace",
                    "street": "12 Marylebone Road",
                    "city": "London",
                    "postal_code": "NW1 5LR",
                    "country": "GB",
                    "phone": "+44 20 7946 0018",
                },
                "billing_address": {
                    "name": "Ada",
                    "street": "12 Marylebone Road",
                    "city": "London",
                    "postal_code": "NW1 5LR",
                    "country": "GB",
                },
                "payment": {
                    "card": {
                        "number_last4": "4242",
                        "number_brand": "visa",
                        "exp_month": 12,
                        "exp_year": 2030,
                    }
                },
                "note": "Please ring twice.",
            }
        )
    return orjson.dumps({"orders": orders})


def make_settings(data: Path, shop: DemoShop) -> Settings:
    return Settings(
        policy_file=demo_policy_path(),
        database_url=f"sqlite+aiosqlite:///{data / 'p.db'}",
        data_dir=data,
        keys=f"local://{data / 'keyring.json'}",
        consent={"secure_cookie": False},
        jwt=JwtSettings(
            issuer="demo-shop",
            audience="demo-shop-api",
            algorithms=["EdDSA"],
            public_key=shop.public_key_pem,
        ),
    )


def assert_no_audit_loss(runtime: Runtime) -> None:
    metrics = runtime.audit.metrics
    expect(metrics.dropped.total == 0, f"audit events dropped: {metrics.dropped.total}")


async def main(smoke: bool = False) -> list[Row]:
    iterations, repeats = (20, 1) if smoke else (ITERATIONS, 15)
    table = Table()
    logging.getLogger("privacy_middleware").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        shop = DemoShop(data / "shop")
        runtime = Runtime(make_settings(data, shop))
        customer = shop.token({"sub": "cus_0001"}, ttl=86400)
        logistics = shop.token({"sub": "logistics-co", "recipient": "logistics", "purpose": "delivery"}, ttl=86400)
        json_h = [(b"content-type", b"application/json")]
        print(
            f"bench_routes: python {sys.version.split()[0]}, {os.cpu_count()} cpus; median of {repeats} x"
            f" {iterations} calls; demo policy; inner app returns a fixed body"
        )
        await runtime.ensure_started()
        try:
            await _checkout(table, runtime, customer, json_h, iterations, repeats)
            await _orders(table, runtime, logistics, iterations, repeats)
            await _audit_on_off(table, runtime, customer, iterations, repeats)
            await _tracking(table, runtime, json_h, iterations, repeats)
            await runtime.audit.flush()
            assert_no_audit_loss(runtime)
        finally:
            await runtime.stop()
        assert_no_audit_loss(runtime)
    return table.rows


async def _checkout(
    table: Table, runtime: Runtime, customer: str, json_h: list[tuple[bytes, bytes]], iterations: int, repeats: int
) -> None:
    """Encryption on the way in: the shop must receive ciphertext, never the card or the street."""
    body = checkout_body()
    bare = RecordingApp(b'{"id":"ord_1"}')
    shop = RecordingApp(b'{"id":"ord_1"}')  # behind the middleware: its calls are the routed requests
    app = PrivacyMiddleware(shop, runtime=runtime)
    headers = [
        *json_h,
        (b"content-length", str(len(body)).encode()),
        (b"authorization", f"Bearer {customer}".encode()),
    ]
    counts = native_request.COUNTS
    counts.reset()
    answer = await probe(app, "POST", "/checkout", body, headers)
    expect(answer.status == 200, f"checkout answered {answer.status}: {answer.body[:200]!r}")
    stored = orjson.loads(shop.received or b"{}")
    card = stored["payment"]["card"]
    expect("cvv" not in card, "the CVV reached the shop")
    for value, where in (
        (card["number"], "card number"),
        (card["holder"], "card holder"),
        (stored["shipping_address"]["street"], "shipping street"),
        (stored["shipping_address"]["phone"], "shipping phone"),
        (stored["billing_address"]["name"], "billing name"),
    ):
        expect(isinstance(value, str) and value.startswith("pe1."), f"{where} reached the shop without ciphertext")
    key = AESGCM(os.urandom(32))

    async def floor() -> None:
        doc = orjson.loads(body)
        for _ in range(8):
            key.encrypt(os.urandom(12), b"12 Marylebone Road", b"aad")
        orjson.dumps(doc)

    got = await compare(
        {
            "base": call(bare, "POST", "/checkout", body, headers),
            "routed": call(app, "POST", "/checkout", body, headers),
            "floor": floor,
        },
        iterations,
        repeats,
    )
    base, routed, floor_cost = got["base"], got["routed"], got["floor"]
    # The request side in one native pass (pipeline/native_request.py): every routed request took it.
    if native.AVAILABLE:
        expect(
            counts.passes == shop.calls and not counts.fallbacks,
            f"native request passes {counts.passes} for {shop.calls} requests, fallbacks {dict(counts.fallbacks)}",
        )
    taken = f"native request pass on ({counts.passes} of {shop.calls})" if native.AVAILABLE else "native off"
    print(f"checkout, {len(body)} bytes, 8 protected fields; {taken}")
    table.add(Row("routes", "checkout floor: orjson parse+dump + 8 AES-GCM", floor_cost, floor_cost, "floor"))
    table.add(Row("routes", "checkout added time (route - bare app)", routed - base, floor_cost, "floor", 3.0))


async def _orders(table: Table, runtime: Runtime, logistics: str, iterations: int, repeats: int) -> None:
    """50 orders filtered for the parcel carrier: it sees delivery address and phone, nothing else."""
    orders = orders_body()
    bare_orders = minimal_app_factory(orders)
    app_orders = PrivacyMiddleware(bare_orders, runtime=runtime)
    auth = [(b"authorization", f"Bearer {logistics}".encode())]
    answer = await probe(app_orders, "GET", "/orders", b"", auth)
    expect(answer.status == 200, f"orders answered {answer.status}")
    seen = orjson.loads(answer.body)["orders"]
    expect(len(seen) == 50, "the carrier did not get 50 orders")
    expect(
        all(not o["customer"] and not o["billing_address"] and "note" not in o for o in seen),
        "the carrier saw e-mail or billing address",
    )
    expect(seen[0]["shipping_address"]["street"] == "12 Marylebone Road", "the carrier lost the delivery street")

    async def parse_dump() -> None:
        orjson.dumps(orjson.loads(orders))

    got = await compare(
        {
            "base": call(bare_orders, "GET", "/orders", b"", auth),
            "routed": call(app_orders, "GET", "/orders", b"", auth),
            "floor": parse_dump,
        },
        iterations,
        repeats,
    )
    base, routed, floor_cost = got["base"], got["routed"], got["floor"]
    native = "on" if runtime.fields.native else "off (extension not built)"
    print(f"GET /orders for logistics, 50 orders, {len(orders)} bytes; native disclosure pass {native}")
    table.add(Row("routes", "orders floor: orjson parse+dump", floor_cost, floor_cost, "floor"))
    table.add(Row("routes", "50 orders for logistics added time", routed - base, floor_cost, "floor", 1.5))
    await runtime.audit.flush()


async def _audit_on_off(table: Table, runtime: Runtime, customer: str, iterations: int, repeats: int) -> None:
    own = orjson.dumps(
        {
            "id": "cus_0001",
            "email": "ada@example.com",
            "name": "Ada",
            "phone": "+44 20 7946 0018",
            "birth_date": "1990-04-01",
        }
    )
    bare_me = minimal_app_factory(own)
    app_me = PrivacyMiddleware(bare_me, runtime=runtime)
    me_auth = [(b"authorization", f"Bearer {customer}".encode())]
    answer = await probe(app_me, "GET", "/me", b"", me_auth)
    expect(answer.status == 200 and orjson.loads(answer.body)["id"] == "cus_0001", "GET /me did not answer")
    written = runtime.audit.metrics.written.total
    await runtime.audit.flush()
    expect(runtime.audit.metrics.written.total > written, "GET /me wrote no data-access event")
    with_audit = await measure(call(app_me, "GET", "/me", b"", me_auth), iterations, repeats)
    real_emit_later = runtime.audit.emit_later
    runtime.audit.emit_later = lambda build: None  # type: ignore[method-assign]
    without_audit = await measure(call(app_me, "GET", "/me", b"", me_auth), iterations, repeats)
    runtime.audit.emit_later = real_emit_later  # type: ignore[method-assign]
    await runtime.audit.flush()
    print("GET /me (customer, filtered, one data-access event per request)")
    table.add(Row("routes", "GET /me audit off", without_audit, without_audit, "audit off"))
    table.add(Row("routes", "GET /me audit on", with_audit, without_audit, "audit off", 1.1))


async def _tracking(
    table: Table, runtime: Runtime, json_h: list[tuple[bytes, bytes]], iterations: int, repeats: int
) -> None:
    """A consented tracking event: forwarded (2xx) with its ids pseudonymised and its IP truncated."""
    change = await runtime.consent.set_purposes(
        Holder("visitor", "vbench0000000000000000"), {"analytics": True}, method="api"
    )
    track_body = orjson.dumps(
        {"event": "page_view", "page": "/tea", "visitor_id": "v-12345", "customer_id": "cus_0001", "ip": "203.0.113.77"}
    )
    bare_track = RecordingApp(b'{"accepted":true}')
    app_track = PrivacyMiddleware(bare_track, runtime=runtime)
    cookie_name = runtime.consent.cookies.cookie_name
    cookie = [
        (b"cookie", f"{cookie_name}={change.cookie}".encode()),
        *json_h,
        (b"content-length", str(len(track_body)).encode()),
    ]
    answer = await probe(app_track, "POST", "/track", track_body, cookie)
    expect(200 <= answer.status < 300 and answer.status != 204, f"tracking answered {answer.status}: not consented")
    forwarded = orjson.loads(bare_track.received or b"{}")
    expect(forwarded.get("visitor_id") not in (None, "v-12345"), "the visitor id was forwarded in clear")
    expect(forwarded.get("customer_id") not in (None, "cus_0001"), "the customer id was forwarded in clear")
    expect(forwarded.get("ip") != "203.0.113.77", "the IP address was forwarded untruncated")
    got = await compare(
        {
            "passthrough": call(app_track, "POST", "/elsewhere", track_body, cookie),
            "routed": call(app_track, "POST", "/track", track_body, cookie),
            "base": call(bare_track, "POST", "/track", track_body, cookie),
        },
        iterations,
        repeats,
    )
    passthrough, routed, base = got["passthrough"], got["routed"], got["base"]
    print("POST /track with a valid consent cookie")
    table.add(Row("routes", "pass-through of the same request (no plan)", passthrough, base, "bare app"))
    table.add(
        Row("routes", "consented tracking (decide+pseudonymise+truncate)", routed, passthrough, "pass-through", 2.5)
    )


if __name__ == "__main__":
    asyncio.run(main(is_smoke()))
