"""Lazy projection gives what a full parse gives: the same disclosed response, the same request the
shop receives, the same refusals; the strict reader's fast checks refuse exactly what the slow
walk refuses. Property tests (hypothesis) over structured JSON; examples per test from
PRIVACY_PROPERTY_EXAMPLES (default 200 here, 10,000 in the dedicated run)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy_middleware.asgi.strict_json import load_strict
from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.demo.shop import DemoShop
from privacy_middleware.errors import PrivacyError
from privacy_middleware.fields import lazy
from privacy_middleware.fields.engine import FieldEngine, Pseudonymiser, Viewer
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.pipeline.plan import RoutePlan
from privacy_middleware.policy.access import Access
from privacy_middleware.policy.compile import compile_policy
from privacy_middleware.policy.load import load_policy
from privacy_middleware.principal import Principal
from privacy_middleware.runtime import Runtime
from support.demo import demo_settings

EXAMPLES = int(os.environ.get("PRIVACY_PROPERTY_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

POLICY = load_policy(demo_policy_path())
ACCESS = Access(POLICY)
ORDERS = compile_policy(POLICY).match("GET", "/orders")
assert ORDERS is not None
ORDERS_BODY = ORDERS[0].response
assert ORDERS_BODY is not None

# Plain floats (no exponent): orjson and msgspec spell them alike, so bytes can be compared.
PLAIN_FLOATS = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False).filter(lambda f: f == 0 or abs(f) > 1e-4)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    PLAIN_FLOATS,
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12).filter(
        lambda s: not s.startswith(("pe1.", "pd1.", "tok_"))
    ),
)
KEYS = st.sampled_from(["id", "name", "street", "email", "x", "items", "note", "number", "city", "é", "a b", "card"])
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=12,
)


def personal(keys: list[str]) -> Any:
    return st.one_of(st.none(), VALUES, st.dictionaries(st.sampled_from([*keys, "extra"]), VALUES, max_size=len(keys)))


ORDER = st.fixed_dictionaries(
    {
        "id": st.text(max_size=6),
        "customer_id": st.one_of(st.sampled_from(["cus_0001", "cus_0002"]), VALUES),
        "customer": personal(["email", "name"]),
        "shipping_address": personal(["name", "street", "city", "postal_code", "country", "phone"]),
        "billing_address": personal(["name", "street"]),
        "payment": st.one_of(
            st.none(), st.fixed_dictionaries({"card": personal(["number", "number_last4", "holder"])})
        ),
        "items": VALUES,
    },
    optional={"note": VALUES, "extra": VALUES},
)
DOCUMENTS = st.one_of(
    st.fixed_dictionaries({"orders": st.lists(ORDER, max_size=4)}, optional={"meta": VALUES}),
    VALUES,
)
VIEWERS = st.sampled_from(["logistics", "support", "analytics", "payment", "own", "nobody"])


def viewer(kind: str) -> Viewer:
    if kind == "own":
        principal = Principal(id="cus_0001", subject="cus_0001", recipient="customer", purpose=None)
    else:
        principal = Principal(id=kind, subject=None, recipient=kind, purpose=None)
    return Viewer(principal, principal.recipient, ACCESS.grants(principal.recipient))


async def disclose_both(body: bytes, kind: str) -> tuple[Any, Any]:
    engine = FieldEngine(POLICY, Pseudonymiser(b"p" * 32))
    outcomes = []
    for partial in (False, True):
        document = lazy.decode(body, lazy.response_skeleton(ORDERS_BODY)) if partial else orjson.loads(body)
        try:
            report = await engine.disclose(ORDERS_BODY, document, viewer(kind))
        except PrivacyError as error:
            outcomes.append(("refused", error.code))
            continue
        outcomes.append((lazy.encode(document) if partial else orjson.dumps(document), report))
    return outcomes[0], outcomes[1]


@SETTINGS
@given(DOCUMENTS, VIEWERS)
def test_a_lazily_decoded_response_is_disclosed_byte_for_byte_as_a_full_parse(document: Any, kind: str) -> None:
    full, partial = asyncio.run(disclose_both(orjson.dumps(document), kind))
    assert partial == full


@SETTINGS
@given(DOCUMENTS, VIEWERS)
def test_a_response_with_whitespace_and_escapes_means_the_same_either_way(document: Any, kind: str) -> None:
    body = json.dumps(document, indent=1, ensure_ascii=True).encode()
    full, partial = asyncio.run(disclose_both(body, kind))
    if full[0] == "refused":
        assert partial == full
    else:
        assert orjson.loads(partial[0]) == orjson.loads(full[0])
        assert partial[1] == full[1]


def test_raw_subtrees_are_copied_as_sent_and_never_become_objects() -> None:
    body = b'{"orders":[{"customer_id":"cus_1","items":[1.50, {"a" : "\\u00e9"}],"customer":{"email":"a@b.c"}}]}'
    document = lazy.decode(body, lazy.response_skeleton(ORDERS_BODY))
    order = document["orders"][0]
    assert isinstance(order["items"], lazy.Raw) and isinstance(order["customer"], dict)
    assert b'"items":[1.50, {"a" : "\\u00e9"}]' in lazy.encode(document)


# --- the strict reader's fast checks ------------------------------------------------------------------


@st.composite
def nested(draw: Any, depth: int = 0) -> tuple[Any, int]:
    """A document and its container depth; strings carry brackets, quotes and backslashes."""
    if depth >= 7 or draw(st.booleans()):
        return draw(st.one_of(st.integers(-5, 5), st.text(alphabet='[]{}"\\ab:', max_size=5))), 0
    children = draw(st.lists(nested(depth + 1), max_size=3))
    inner = max((d for _, d in children), default=0)
    if draw(st.booleans()):
        return [c for c, _ in children], inner + 1
    return {f"k{i}[{{": c for i, (c, _) in enumerate(children)}, inner + 1


@SETTINGS
@given(nested(), st.integers(1, 6))
def test_the_strict_reader_refuses_exactly_the_bodies_nested_too_deep(case: tuple[Any, int], limit: int) -> None:
    document, depth = case
    body = orjson.dumps(document)
    if depth > limit:
        with pytest.raises(PrivacyError) as refused:
            load_strict(body, max_depth=limit)
        assert refused.value.code == "json_too_deep"
    else:
        assert load_strict(body, max_depth=limit) == document


# --- request protection through the middleware ---------------------------------------------------------


class Recording:
    """The shop: keeps the body it received."""

    def __init__(self) -> None:
        self.received: bytes | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.received = b"".join(chunks)
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"id":"ord_1"}'})


@dataclasses.dataclass
class Checkout:
    loop: asyncio.AbstractEventLoop
    apps: dict[bool, tuple[PrivacyMiddleware, Recording]]
    token: str

    def post(self, body: bytes, partial: bool) -> tuple[int, bytes]:
        app, shop = self.apps[partial]
        shop.received = None
        answer: dict[str, Any] = {"body": b""}
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {self.token}".encode()),
        ]
        scope = {"type": "http", "method": "POST", "path": "/checkout", "raw_path": b"/checkout"}
        scope |= {"query_string": b"", "headers": headers, "client": ("127.0.0.1", 1), "server": ("t", 80)}
        scope |= {"scheme": "http", "http_version": "1.1", "root_path": "", "asgi": {"version": "3.0"}}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            else:
                answer["body"] += message.get("body", b"")

        asyncio.run_coroutine_threadsafe(app(scope, receive, send), self.loop).result(60)
        if shop.received is not None:
            return answer["status"], shop.received
        return answer["status"], orjson.loads(answer["body"]).get("code", "").encode()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    data = Path(tmp_path_factory.mktemp("lazy"))
    shop = DemoShop(data / "shop")
    settings = demo_settings(data, shop)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runtime = Runtime(settings)
    asyncio.run_coroutine_threadsafe(runtime.ensure_started(), loop).result(60)
    apps = {}
    for partial in (False, True):
        inner = Recording()
        app = PrivacyMiddleware(inner, runtime=runtime)
        if not partial:
            app.plans = app.plans.map(lambda plan: dataclasses.replace(plan, lazy_request=None))
        apps[partial] = (app, inner)
    plan = apps[True][0].plans.match("POST", "/checkout")
    assert plan is not None and isinstance(plan[0], RoutePlan) and plan[0].lazy_request is not None
    try:
        yield Checkout(loop, apps, shop.token({"sub": "cus_0001"}, ttl=3600))
    finally:
        asyncio.run_coroutine_threadsafe(runtime.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def sealed_as_placeholders(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: sealed_as_placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sealed_as_placeholders(v) for v in value]
    if isinstance(value, str) and value.startswith("pe1."):
        return "<sealed>"
    return value


SUSPECT = st.sampled_from(
    ["4242 4242 4242 4242", "cvv", "CVC2", "\uff43\uff56\uff56", "737", "4000056655665556", "card", "x"]
)
EXTRA = st.recursive(
    st.one_of(SCALARS, SUSPECT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.one_of(KEYS, SUSPECT), inner, max_size=3)),
    max_leaves=10,
)
CHECKOUTS = st.fixed_dictionaries(
    {
        "payment": st.fixed_dictionaries(
            {
                "card": st.fixed_dictionaries(
                    {"number": st.just("4242424242424242")}, optional={"cvv": SUSPECT, "x": EXTRA}
                )
            }
        ),
        "shipping_address": st.dictionaries(st.sampled_from(["name", "street", "city", "x"]), st.text(max_size=8)),
    },
    optional={"items": EXTRA, "note": st.one_of(st.text(max_size=8), SUSPECT), "customer": EXTRA, "extra": EXTRA},
)


@settings(max_examples=max(10, EXAMPLES // 10), deadline=None, suppress_health_check=list(HealthCheck))
@given(CHECKOUTS)
def test_a_lazily_decoded_checkout_reaches_the_shop_as_a_fully_parsed_one(checkout: Checkout, body: Any) -> None:
    raw = orjson.dumps(body)
    full, partial = checkout.post(raw, False), checkout.post(raw, True)
    assert partial[0] == full[0]
    if full[0] == 201:
        assert sealed_as_placeholders(orjson.loads(partial[1])) == sealed_as_placeholders(orjson.loads(full[1]))
    else:
        assert partial[1] == full[1]  # the same refusal code


@pytest.mark.parametrize("value", [None, ""])
def test_an_empty_card_code_outside_the_card_is_read_alike_lazily_and_in_full(checkout: Checkout, value: Any) -> None:
    body = {"payment": {"card": {"number": "4242424242424242"}}, "shipping_address": {}, "customer": {"cvv": value}}
    raw = orjson.dumps(body)
    full, partial = checkout.post(raw, False), checkout.post(raw, True)
    assert partial[0] == full[0] == 201, (full, partial)
