"""Route identity (DESIGN.md §9): a plan applies to every spelling the shop routes to its handler.

Four shops with the same routes: one that routes like Express (the canonicaliser places the
spellings), Starlette with a mount and its own parameter names (the app's router is asked),
Django REST Framework's DefaultRouter with `.json` format suffixes (Django's URL resolver is asked),
and the Express-like shop mounted inside a Starlette app (Starlette's router reaches the mount, the
canonicaliser places the rest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from support import shops

pytestmark = pytest.mark.anyio

CHECKOUT_SPELLINGS = [
    "/api/checkout",
    "/api/checkout/",
    "/API/CHECKOUT",
    "/api//checkout",
    "//api/checkout",
    "/api/./checkout",
    "/api/x/../checkout",
    "/api/checkout;x=1",
    "/api%2Fcheckout",
    "/api/checkout.json",
    "/api/Checkout.JSON",
    "/api\\checkout",
]


def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": shops.JWT_SECRET, "algorithms": ["HS256"]},
    )


class Shop:
    def __init__(self, app: PrivacyMiddleware, client: httpx.AsyncClient, received: list[bytes]) -> None:
        self.app = app
        self.client = client
        self.received = received


@pytest.fixture(params=["lenient", "starlette", "drf", "mounted"])
async def shop(request: pytest.FixtureRequest, tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[Shop]:
    received: list[bytes]
    if request.param == "lenient":
        inner: Any = shops.LenientShop()
        received = inner.received
    elif request.param == "starlette":
        received = []
        inner = shops.starlette_shop(received)
    elif request.param == "mounted":
        from starlette.applications import Starlette
        from starlette.routing import Mount

        lenient = shops.LenientShop()
        received = lenient.received
        inner = Starlette(routes=[Mount("/api", app=lenient)])
    else:
        from django.conf import settings as django_settings

        previous = django_settings.ROOT_URLCONF if django_settings.configured else None
        shops.configure_django(shops.drf_urlconf)
        from django.core.asgi import get_asgi_application

        inner = get_asgi_application()
        received = shops.DRF_RECEIVED
        received.clear()
    app = PrivacyMiddleware(inner, runtime=Runtime(settings(tmp_path), policy=shops.policy()))
    try:
        async with (
            asgi_lifespan(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as client,
        ):
            yield Shop(app, client, received)
    finally:
        if request.param == "drf" and previous is not None:
            shops.configure_django(previous)


async def send_raw(shop: Shop, method: str, raw_path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """Send a path exactly as spelled (httpx would normalise dot segments and slashes)."""
    request = shop.client.build_request(method, "http://shop.example/", content=body, headers=headers)
    request.url = request.url.copy_with(raw_path=raw_path.encode())
    return await shop.client.send(request)


@pytest.mark.parametrize("spelling", CHECKOUT_SPELLINGS)
async def test_no_spelling_of_checkout_delivers_the_card_in_clear(shop: Shop, spelling: str) -> None:
    headers = {**shops.bearer(shops.CUSTOMER), "content-type": "application/json"}
    response = await send_raw(shop, "POST", spelling, orjson.dumps(shops.checkout_body()), headers)
    for body in shop.received:
        assert shops.in_clear(body) == []
    assert response.status_code in (201, 307, 308, 400, 404, 405, 422), response.text
    if response.status_code == 201:
        assert shop.received, "a 201 from the shop means it received the (protected) body"


ORDER_SPELLINGS = [
    *(f"/api/orders/ord_1{suffix}" for suffix in ("", "/", ".json", ".json/")),
    "/api//orders/ord_1",
    "/API/ORDERS/ord_1",
    "/api/./orders/ord_1",
    "/api/orders;x=1/ord_1",
]


@pytest.mark.parametrize("spelling", ORDER_SPELLINGS)
async def test_order_aliases_are_filtered_for_the_carrier(shop: Shop, spelling: str) -> None:
    response = await send_raw(shop, "GET", spelling, b"", shops.bearer(shops.CARRIER))
    if response.status_code == 200:
        seen = response.json()
        assert seen.get("street") == shops.STREET  # the carrier may see the delivery street
        assert shops.CARD not in response.text and "cus_1" not in response.text


async def test_drf_format_suffix_reaches_the_plan(tmp_path: Path, asgi_lifespan: Any) -> None:
    """The attack report's case: `POST /api/checkout.json` and `GET /api/orders/{ref}.json`."""
    from django.conf import settings as django_settings

    previous = django_settings.ROOT_URLCONF if django_settings.configured else None
    shops.configure_django(shops.drf_urlconf)
    try:
        from django.core.asgi import get_asgi_application

        app = PrivacyMiddleware(get_asgi_application(), runtime=Runtime(settings(tmp_path), policy=shops.policy()))
        shops.DRF_RECEIVED.clear()
        async with (
            asgi_lifespan(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as client,
        ):
            assert app.identity.kind == "django"
            response = await client.post(
                "/api/checkout.json", json=shops.checkout_body(), headers=shops.bearer(shops.CUSTOMER)
            )
            assert response.status_code == 201, response.text
            [stored] = shops.DRF_RECEIVED
            assert shops.in_clear(stored) == []
            order = await client.get("/api/orders/ord_1.json", headers=shops.bearer(shops.CARRIER))
            assert order.status_code == 200
            assert shops.CARD not in order.text and "cus_1" not in order.text
    finally:
        if previous is not None:
            shops.configure_django(previous)


async def test_spellings_the_canonicaliser_cannot_place_are_refused(tmp_path: Path, asgi_lifespan: Any) -> None:
    inner = shops.LenientShop()
    app = PrivacyMiddleware(inner, runtime=Runtime(settings(tmp_path), policy=shops.policy()))
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example") as client,
    ):
        shop = Shop(app, client, inner.received)
        headers = {**shops.bearer(shops.CUSTOMER), "content-type": "application/json"}
        for spelling in ("/api%252Fcheckout", "/api/check%00out", "/api/%2e%2e/%2e%2e/api/checkout"):
            response = await send_raw(shop, "POST", spelling, orjson.dumps(shops.checkout_body()), headers)
            assert response.status_code == 400, spelling
            assert response.json()["code"] == "ambiguous_path"
        assert inner.received == []


def test_canonical_forms() -> None:
    from privacy_middleware.errors import PrivacyError
    from privacy_middleware.routing.canonical import candidates, normalise

    assert normalise("//a/./b/../c;x=1/") == "/a/c"
    assert normalise("/a\\b") == "/a/b"
    assert candidates("/API/Orders/7.json") == ["/API/Orders/7.json", "/API/Orders/7"]
    assert candidates("/", b"rest_route=/wc/v3/orders") == ["/", "/wp-json/wc/v3/orders"]
    for bad in ("/../x", "/a/../../x", "/a\x00b".replace("\\x00", "\x00")):
        with pytest.raises(PrivacyError) as refused:
            normalise(bad)
        assert refused.value.code == "ambiguous_path"


def test_unicode_spellings_a_normalising_router_reaches_are_placed() -> None:
    from privacy_middleware.routing.canonical import AliasTable

    table = AliasTable([("POST", "/api/checkout", "checkout"), ("GET", "/api/orders/{ref}", "order")])
    fullwidth = "/api/\uff43\uff48\uff45\uff43\uff4b\uff4f\uff55\uff54"
    for spelling in (fullwidth, "/api/chec\u212aout", "/API/CHECKOUT.json"):
        found = table.place("POST", spelling)
        assert found is not None and found[0] == "checkout", spelling
    found = table.place("GET", "/\uff41\uff50\uff49/orders/7")
    assert found is not None and found[0] == "order"
    # Full-width letters that only a second decoding turns into the route: refused, not missed.
    from privacy_middleware.errors import PrivacyError

    with pytest.raises(PrivacyError) as refused:
        table.place("POST", "//\uff41%70i/checkout")
    assert refused.value.code == "ambiguous_path"
    assert table.place("POST", "/api/ch\u0435ckout") is None  # a Cyrillic look-alike is another route


@pytest.mark.parametrize("kind", ["starlette", "mounted", "lenient"])
def test_a_method_the_identity_never_places_is_never_placed_on_any_spelling(kind: str) -> None:
    """`may_place(method)` False (the middleware then skips the identity check for that method) only
    where `place` answers None for every path and query with that method: checked against every
    checkout spelling and the order aliases under each method, for Starlette's router, a router-less
    mount (always asked) and the canonicaliser (always asked)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from privacy_middleware.routing.canonical import AliasTable
    from privacy_middleware.routing.identity import identity_for

    if kind == "starlette":
        inner: Any = shops.starlette_shop([])
    elif kind == "mounted":
        inner = Starlette(routes=[Mount("/api", app=shops.LenientShop())])
    else:
        inner = shops.LenientShop()
    plans = [
        type("Plan", (), {"spec": spec})()
        for spec in (
            type("Spec", (), {"method": route["method"], "template": route["path"]})()
            for route in shops.POLICY["routes"]  # type: ignore[attr-defined]
        )
    ]
    identity = identity_for(inner, plans, lambda: AliasTable((p.spec.method, p.spec.template, p) for p in plans))
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", "post", "QUERY"]
    never = [method for method in methods if not identity.may_place(method)]
    assert (kind == "starlette") is bool(never)
    spellings = [*CHECKOUT_SPELLINGS, "/api/orders/7", "/api/orders/7/", "/API/ORDERS/7", "/api/orders/7.json"]
    for method in never:
        for spelling in spellings:
            for query in (b"", b"rest_route=/api/checkout"):
                scope = {"type": "http", "method": method, "path": spelling, "headers": [], "query_string": query}
                assert identity.place(scope) is None, (method, spelling)
    if kind == "starlette":
        assert identity.may_place("POST") and identity.may_place("GET") and not identity.may_place("DELETE")
