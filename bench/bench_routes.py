"""What each capability costs on its own route, against the floor measured in the same run.

- checkout: a 5 KB body with 8 protected fields (card encrypted + companions, CVV stripped, 6 address
  fields encrypted) vs the floor: orjson parse + dump + 8 raw AES-256-GCM calls;
- filtering: 50 orders (~25 KB) disclosed to the logistics recipient vs orjson parse + dump of the body;
- tracking: a consented tracking event (signed cookie, no database read) vs a bare pass-through;
- audit: a filtered customer read with the audit writer on vs off.

Run: .venv/bin/python bench/bench_routes.py   (in-process, ASGI apps called directly; demo policy)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).parent))
from common import call, measure, minimal_app_factory, report

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.demo.shop import DemoShop
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import JwtSettings, Settings

ITERATIONS = 2000


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


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        shop = DemoShop(data / "shop")
        settings = Settings(
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
        customer = shop.token({"sub": "cus_0001"}, ttl=86400)
        logistics = shop.token({"sub": "logistics-co", "recipient": "logistics", "purpose": "delivery"}, ttl=86400)
        json_h = [(b"content-type", b"application/json")]
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; median of 7 x {ITERATIONS} calls; "
            "demo policy; inner app returns a fixed body"
        )

        # --- checkout: encryption on the way in -----------------------------------------------
        body = checkout_body()
        bare = minimal_app_factory(b'{"id":"ord_1"}')
        runtime = Runtime(settings)
        app = PrivacyMiddleware(bare, runtime=runtime)
        await runtime.ensure_started()
        headers = [
            *json_h,
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {customer}".encode()),
        ]
        base = await measure(call(bare, "POST", "/checkout", body, headers), ITERATIONS)
        routed = await measure(call(app, "POST", "/checkout", body, headers), ITERATIONS)
        key = AESGCM(os.urandom(32))

        async def floor() -> None:
            doc = orjson.loads(body)
            for _ in range(8):
                key.encrypt(os.urandom(12), b"12 Marylebone Road", b"aad")
            orjson.dumps(doc)

        floor_cost = await measure(floor, ITERATIONS)
        print(f"\ncheckout, {len(body)} bytes, 8 protected fields")
        report("  floor: orjson parse+dump + 8 raw AES-GCM", floor_cost, floor_cost, "floor")
        report("  middleware overhead (route - bare app)", routed - base, floor_cost, "floor (target <= 2x)")

        # --- filtering: 50 orders for logistics ------------------------------------------------
        orders = orders_body()
        bare_orders = minimal_app_factory(orders)
        app_orders = PrivacyMiddleware(bare_orders, runtime=runtime)
        runtime.audit._accepting = True
        auth = [(b"authorization", f"Bearer {logistics}".encode())]
        base = await measure(call(bare_orders, "GET", "/orders", b"", auth), ITERATIONS)
        routed = await measure(call(app_orders, "GET", "/orders", b"", auth), ITERATIONS)

        async def parse_dump() -> None:
            orjson.dumps(orjson.loads(orders))

        floor_cost = await measure(parse_dump, ITERATIONS)
        print(f"\nGET /orders for logistics, 50 orders, {len(orders)} bytes")
        report("  floor: orjson parse+dump", floor_cost, floor_cost, "floor")
        report("  middleware overhead (route - bare app)", routed - base, floor_cost, "floor (target <= 1.5x)")
        await runtime.audit.flush()

        # --- audit on vs off on a customer's read -----------------------------------------------
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
        with_audit = await measure(call(app_me, "GET", "/me", b"", me_auth), ITERATIONS)
        real_emit = runtime.audit.emit
        runtime.audit.emit = lambda event: None  # type: ignore[method-assign]
        without_audit = await measure(call(app_me, "GET", "/me", b"", me_auth), ITERATIONS)
        runtime.audit.emit = real_emit  # type: ignore[method-assign]
        await runtime.audit.flush()
        print("\nGET /me (customer, filtered, one data-access event per request)")
        report("  audit off", without_audit, without_audit, "audit off")
        report("  audit on", with_audit, without_audit, "audit off (target < 1.1x)")

        # --- tracking with a valid consent cookie ------------------------------------------------
        from privacy_middleware.consent.records import Holder

        change = await runtime.consent.set_purposes(
            Holder("visitor", "vbench0000000000000000"), {"analytics": True}, method="api"
        )
        track_body = b'{"event":"page_view","page":"/tea"}'
        bare_track = minimal_app_factory(b'{"accepted":true}')
        app_track = PrivacyMiddleware(bare_track, runtime=runtime)
        cookie = [
            (b"cookie", f"privacy_consent={change.cookie}".encode()),
            *json_h,
            (b"content-length", str(len(track_body)).encode()),
        ]
        base = await measure(call(bare_track, "POST", "/track", track_body, cookie), ITERATIONS)
        passthrough = await measure(call(app_track, "POST", "/elsewhere", track_body, cookie), ITERATIONS)
        routed = await measure(call(app_track, "POST", "/track", track_body, cookie), ITERATIONS)
        print("\nPOST /track with a valid consent cookie")
        report("  bare pass-through request (no plan)", passthrough, base, "bare app")
        report(
            "  tracking route (decision + pseudonymise + truncate)",
            routed,
            passthrough,
            "bare pass-through (target < 1.1x)",
        )
        await runtime.stop()


if __name__ == "__main__":
    asyncio.run(main())
