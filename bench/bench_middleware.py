"""Pass-through cost and a planned route buffering a 5 KB JSON body, as ratios to the bare app.

Run: .venv/bin/python bench/bench_middleware.py   (in-process, ASGI apps called directly)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).parent))
from common import call, measure, minimal_app_factory, report

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

POLICY = {
    "policy": {"name": "bench", "version": "1", "effective_date": "2026-01-01"},
    "categories": {"user.financial.card.cvv": {}, "user.name": {}},
    "purposes": {"order_fulfilment": {"legal_basis": "contract"}},
    "routes": [
        {
            "method": "POST",
            "path": "/checkout",
            "request": {
                "fields": [{"select": "payment.cvv", "category": "user.financial.card.cvv", "transform": "strip"}]
            },
        },
        {
            "method": "GET",
            "path": "/orders/{id}",
            "response": {"fields": [{"select": "name", "category": "user.name"}]},
        },
    ]
    + [
        {
            "method": "GET",
            "path": f"/other/{i}/{{x}}",
            "response": {"fields": [{"select": "name", "category": "user.name"}]},
        }
        for i in range(50)
    ],
}


def starlette_shop() -> Starlette:
    """A realistic bare app: Starlette routing with JSON endpoints, like a small shop API."""

    async def products(request: Request) -> Response:
        return Response(b'{"products":[]}', media_type="application/json")

    async def checkout(request: Request) -> Response:
        await request.body()
        return Response(b'{"id":"ord_1"}', media_type="application/json", status_code=201)

    routes = [Route(f"/r{i}/{{x}}", products) for i in range(20)]
    routes += [Route("/products", products), Route("/checkout", checkout, methods=["POST"])]
    return Starlette(routes=routes)


def body_5kb() -> bytes:
    lines = [
        {"sku": f"SKU-{i:04d}", "qty": i % 5 + 1, "price": 9.99, "title": "Loose-leaf tea, 100 g tin"}
        for i in range(55)
    ]
    body = orjson.dumps({"items": lines, "payment": {"cvv": "123", "holder": "Ada"}, "note": ""})
    return body


async def main() -> None:
    iterations = 20_000
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/b.db", data_dir=Path(tmp))
        bare = minimal_app_factory()
        runtime = Runtime(settings, policy=validate_policy(POLICY))
        wrapped = PrivacyMiddleware(bare, runtime=runtime)
        await runtime.ensure_started()
        body = body_5kb()
        json_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        shop = starlette_shop()
        shop_wrapped = PrivacyMiddleware(shop, runtime=runtime)
        print(
            f"python {sys.version.split()[0]}, {iterations} calls x 7 repeats, median; body {len(body)} bytes;"
            f" {runtime.plans.size} planned routes in the table"
        )
        base_get = await measure(call(bare, "GET", "/products"), iterations)
        mw_get = await measure(call(wrapped, "GET", "/products"), iterations)
        report("pass-through GET (route without a plan)", mw_get, base_get, "bare minimal ASGI app")
        print(f"{'':<52} +{(mw_get - base_get) * 1e6:8.2f} µs added per request")
        shop_get = await measure(call(shop, "GET", "/products"), iterations // 4)
        shop_mw_get = await measure(call(shop_wrapped, "GET", "/products"), iterations // 4)
        report("pass-through GET on a Starlette shop", shop_mw_get, shop_get, "bare Starlette shop")
        base_post = await measure(call(bare, "POST", "/checkout", body, json_headers), iterations)
        mw_post = await measure(call(wrapped, "POST", "/checkout", body, json_headers), iterations)
        report("POST /checkout, 5 KB JSON buffered + rewritten", mw_post, base_post, "bare minimal ASGI app")

        async def floor() -> None:
            orjson.dumps(orjson.loads(body))

        floor_cost = await measure(floor, iterations)
        print(
            f"{'':<52} +{(mw_post - base_post) * 1e6:8.2f} µs added;"
            f" floor (orjson parse+dump) {floor_cost * 1e6:.2f} µs:"
            f" {(mw_post - base_post) / floor_cost:.2f}x the floor"
        )
        shop_post = await measure(call(shop, "POST", "/checkout", body, json_headers), iterations // 4)
        shop_mw_post = await measure(call(shop_wrapped, "POST", "/checkout", body, json_headers), iterations // 4)
        report("POST /checkout on a Starlette shop", shop_mw_post, shop_post, "bare Starlette shop")
        await runtime.stop()


if __name__ == "__main__":
    asyncio.run(main())
