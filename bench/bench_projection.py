"""Prototypes for a compiled hot path, measured against the pure-Python engine and the orjson floor.

The question (issue: pure-Python dict walking is the wall): how much of a filtered or protected body's
cost can go if untouched subtrees are never turned into Python objects? Three ways to copy what the
policy does not touch as raw bytes, each checked to give byte-identical output to the middleware:

- (a) msgspec lazy projection: decode to `dict[str, msgspec.Raw]` level by level, down to the
  personal objects only; everything else is copied as the raw bytes it came in as;
- (c) simdjson on-demand (pysimdjson): parse once, walk to the personal objects, copy the rest with
  the parser's minified `.mini` bytes;
- the pure-Python wall: orjson parse, the same projection as dict operations, orjson dump.

(b), the native one-pass extension, is the engine's own `disclose_bytes` (fields/native.py), timed
beside the engine on a full parse and on (a) when the extension was built. Both the floor and the
middleware's own figure (route - bare app, the same request) are measured in the same run.

Run: .venv/bin/python bench/bench_projection.py [--smoke]
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).parent))
from bench_routes import checkout_body, make_settings, orders_body
from common import Row, Table, as_async, call, compare, compare_sync, expect, is_smoke, minimal_app_factory, probe

from privacy_middleware.demo.shop import DemoShop
from privacy_middleware.fields import lazy
from privacy_middleware.fields.engine import Viewer
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.runtime import Runtime

try:
    import simdjson
except ImportError:  # optional: pip install pysimdjson
    simdjson = None

# What the parcel carrier may see of an order (the demo policy's `order` shape and the logistics
# recipient): personal objects keep only the seen keys; customer_id and note go; the rest is copied.
# Spelled out by hand for the prototype; the check below proves it equals the engine's output.
DROP = frozenset({"customer_id", "note"})
PERSONAL: dict[str, Any] = {
    "customer": frozenset(),
    "shipping_address": frozenset({"name", "street", "city", "postal_code", "country", "phone"}),
    "billing_address": frozenset(),
    "payment": {"card": frozenset()},
}

_raw_dict = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_encode = msgspec.json.Encoder().encode


def _msgspec_object(raw: bytes | msgspec.Raw, rule: Any) -> dict[str, Any]:
    fields = _raw_dict.decode(raw)
    if isinstance(rule, frozenset):
        return {k: v for k, v in fields.items() if k in rule}
    return {k: _msgspec_object(v, rule[k]) if k in rule else v for k, v in fields.items()}


def msgspec_orders(body: bytes) -> bytes:
    top = _raw_dict.decode(body)
    orders = []
    for raw in _raw_list.decode(top["orders"]):
        order = _raw_dict.decode(raw)
        orders.append(
            {k: _msgspec_object(v, PERSONAL[k]) if k in PERSONAL else v for k, v in order.items() if k not in DROP}
        )
    top["orders"] = orders  # type: ignore[assignment]
    return _encode(top)


def _python_object(value: dict[str, Any], rule: Any) -> dict[str, Any]:
    if isinstance(rule, frozenset):
        return {k: v for k, v in value.items() if k in rule}
    return {k: _python_object(v, rule[k]) if k in rule else v for k, v in value.items()}


def python_orders(body: bytes) -> bytes:
    doc = orjson.loads(body)
    doc["orders"] = [
        {k: _python_object(v, PERSONAL[k]) if k in PERSONAL else v for k, v in order.items() if k not in DROP}
        for order in doc["orders"]
    ]
    return orjson.dumps(doc)


def _simd_object(value: Any, rule: Any) -> bytes:
    parts = []
    for key in value:
        if isinstance(rule, frozenset):
            if key in rule:
                parts.append(orjson.dumps(key) + b":" + _simd_value(value[key]))
        elif key in rule:
            parts.append(orjson.dumps(key) + b":" + _simd_object(value[key], rule[key]))
        else:
            parts.append(orjson.dumps(key) + b":" + _simd_value(value[key]))
    return b"{" + b",".join(parts) + b"}"


def _simd_value(value: Any) -> bytes:
    mini = getattr(value, "mini", None)
    return mini if mini is not None else orjson.dumps(value)


def simdjson_orders(parser: Any, body: bytes) -> bytes:
    doc = parser.parse(body)
    out = []
    for order in doc["orders"]:
        parts = []
        for key in order:
            if key in DROP:
                continue
            if key in PERSONAL:
                parts.append(orjson.dumps(key) + b":" + _simd_object(order[key], PERSONAL[key]))
            else:
                parts.append(orjson.dumps(key) + b":" + _simd_value(order[key]))
        out.append(b"{" + b",".join(parts) + b"}")
    return b'{"orders":[' + b",".join(out) + b"]}"


# --- the checkout: 8 values encrypted, the rest copied -----------------------------------------

PROTECT: dict[str, Any] = {
    "payment": {"card": {"number": "enc", "holder": "enc", "cvv": "strip"}},
    "shipping_address": {"name": "enc", "street": "enc", "phone": "enc"},
    "billing_address": {"name": "enc", "street": "enc"},
}


def msgspec_protect(body: bytes, seal: Callable[[str], str]) -> bytes:
    def walk(raw: bytes | msgspec.Raw, rule: dict[str, Any]) -> dict[str, Any]:
        fields = _raw_dict.decode(raw)
        out: dict[str, Any] = {}
        for key, value in fields.items():
            action = rule.get(key)
            if action is None:
                out[key] = value
            elif action == "enc":
                out[key] = seal(msgspec.json.decode(value))
            elif isinstance(action, dict):
                out[key] = walk(value, action)
        return out

    return _encode(walk(body, PROTECT))


def python_protect(body: bytes, seal: Callable[[str], str]) -> bytes:
    def walk(value: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            action = rule.get(key)
            if action is None:
                out[key] = item
            elif action == "enc":
                out[key] = seal(item)
            elif isinstance(action, dict):
                out[key] = walk(item, action)
        return out

    return orjson.dumps(walk(orjson.loads(body), PROTECT))


def engine_paths(runtime: Runtime, app: PrivacyMiddleware, body: bytes) -> tuple[Any, Any, Any]:
    """The field engine disclosing to the carrier on a full parse, on lazy projection as wired
    (fields/lazy.py), and in the native one-pass over the bytes (fields/native.py, (b)), so the
    choice between them is measured on the engine itself."""
    found = app.plans.match("GET", "/orders")
    assert found is not None and found[0].spec.response is not None
    response = found[0].spec.response
    engine = runtime.services.fields
    carrier = Viewer(None, "logistics", runtime.services.access.grants("logistics"), "delivery")
    skeleton = lazy.response_skeleton(response)

    async def full() -> bytes:
        document = orjson.loads(body)
        await engine.disclose(response, document, carrier)
        return orjson.dumps(document)

    async def partial() -> bytes:
        document = lazy.decode(body, skeleton)
        await engine.disclose(response, document, carrier)
        return lazy.encode(document)

    async def native() -> bytes:
        got = await engine.disclose_bytes(response, body, carrier)
        expect(got is not None, "the native pass declined the carrier's order list")
        assert got is not None
        return got[0]

    return full, partial, native


async def main(smoke: bool = False) -> list[Row]:
    iterations, repeats = (10, 1) if smoke else (200, 15)
    table = Table()
    logging.getLogger("privacy_middleware").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        shop = DemoShop(data / "shop")
        runtime = Runtime(make_settings(data, shop))
        await runtime.ensure_started()
        try:
            logistics = shop.token({"sub": "logistics-co", "recipient": "logistics", "purpose": "delivery"}, 86400)
            auth = [(b"authorization", f"Bearer {logistics}".encode())]
            print(
                f"bench_projection: python {sys.version.split()[0]}, msgspec {msgspec.__version__},"
                f" pysimdjson {'yes' if simdjson else 'not installed'}; median of {repeats} x {iterations}"
            )
            for count in (50, 5000):
                body = orders_body(count)
                bare = minimal_app_factory(body)
                app = PrivacyMiddleware(bare, runtime=runtime)
                engine_out = (await probe(app, "GET", "/orders", b"", auth)).body
                expect(msgspec_orders(body) == engine_out, "msgspec projection differs from the engine")
                expect(python_orders(body) == engine_out, "python projection differs from the engine")
                parser = simdjson.Parser() if simdjson else None
                if parser is not None:
                    expect(simdjson_orders(parser, body) == engine_out, "simdjson projection differs")
                engine_full, engine_lazy, engine_native = engine_paths(runtime, app, body)
                expect(await engine_lazy() == await engine_full() == engine_out, "the engine's lazy path differs")
                native_on = runtime.services.fields.native
                if native_on:
                    expect(await engine_native() == engine_out, "the engine's native pass differs")
                n = max(1, iterations * 50 // count)
                fns = {
                    "floor": as_async(lambda b=body: orjson.dumps(orjson.loads(b))),  # type: ignore[misc]
                    "routed": call(app, "GET", "/orders", b"", auth),
                    "bare": call(bare, "GET", "/orders", b"", auth),
                    "python": as_async(lambda b=body: python_orders(b)),  # type: ignore[misc]
                    "msgspec": as_async(lambda b=body: msgspec_orders(b)),  # type: ignore[misc]
                    "engine_full": engine_full,
                    "engine_lazy": engine_lazy,
                }
                if parser is not None:
                    fns["simdjson"] = as_async(lambda b=body, p=parser: simdjson_orders(p, b))  # type: ignore[misc]
                if native_on:
                    fns["engine_native"] = engine_native
                got = await compare(fns, n, repeats)
                floor = got["floor"]
                label = f"{count} orders, {len(body) // 1024} KB"
                table.add(Row("projection", f"{label}: orjson parse+dump", floor, floor, "floor"))
                middleware = got["routed"] - got["bare"]
                table.add(Row("projection", f"{label}: middleware (route - bare)", middleware, floor, "floor"))
                table.add(Row("projection", f"{label}: python dict projection", got["python"], floor, "floor"))
                table.add(Row("projection", f"{label}: (a) msgspec lazy projection", got["msgspec"], floor, "floor"))
                if parser is not None:
                    table.add(Row("projection", f"{label}: (c) simdjson on-demand", got["simdjson"], floor, "floor"))
                table.add(Row("projection", f"{label}: engine on a full parse", got["engine_full"], floor, "floor"))
                table.add(Row("projection", f"{label}: engine on (a) as wired", got["engine_lazy"], floor, "floor"))
                if native_on:
                    native_cost = got["engine_native"]
                    table.add(Row("projection", f"{label}: engine, (b) native one pass", native_cost, floor, "floor"))
            await runtime.audit.flush()
            expect(runtime.audit.metrics.dropped.total == 0, "audit events dropped")
        finally:
            await runtime.stop()

    body = checkout_body()
    key = AESGCM(os.urandom(32))

    def seal(value: str) -> str:
        nonce = os.urandom(12)
        return "pe1." + (nonce + key.encrypt(nonce, value.encode(), b"aad")).hex()

    out = orjson.loads(msgspec_protect(body, seal))
    expect("cvv" not in out["payment"]["card"] and out["items"] == orjson.loads(body)["items"], "protect broke")
    expect(out["shipping_address"]["street"].startswith("pe1."), "protect did not encrypt")

    def floor_protect() -> None:
        doc = orjson.loads(body)
        for _ in range(8):
            key.encrypt(os.urandom(12), b"12 Marylebone Road", b"aad")
        orjson.dumps(doc)

    got = compare_sync(
        {
            "floor": floor_protect,
            "python": lambda: python_protect(body, seal),
            "msgspec": lambda: msgspec_protect(body, seal),
        },
        iterations,
        repeats,
    )
    floor = got["floor"]
    table.add(Row("projection", f"checkout {len(body)} B: floor parse+dump+8 AES", floor, floor, "floor"))
    table.add(Row("projection", "checkout: python walk + 8 raw AES-GCM", got["python"], floor, "floor"))
    table.add(Row("projection", "checkout: (a) msgspec lazy + 8 raw AES-GCM", got["msgspec"], floor, "floor"))
    return table.rows


if __name__ == "__main__":
    asyncio.run(main(is_smoke()))
