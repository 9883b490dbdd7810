"""Run by test_oscar.py in its own process: django-oscar + django-oscar-api behind the middleware,
in-process. A customer registers and signs in with a Django session, stores an address through the
shop's API, the shop's SQLite file holds no plaintext, the customer reads it in clear (in-process and
behind `serve --upstream`, where the session is resolved by the shop's who-am-I view), and export
and erasure go through the declarative Django adapter."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
POLICY = """
[policy]
name = "Oscar acceptance"
version = "1"
effective_date = "2026-01-01"

[categories."user.name"]
[categories."user.contact.address.delivery"]
[categories."user.contact.email"]

[purposes.order_fulfilment]
legal_basis = "contract"

[shapes.address]
personal_objects = ["$"]
fields = [
  { select = "first_name", category = "user.name" },
  { select = "last_name", category = "user.name" },
  { select = "line1", category = "user.contact.address.delivery" },
]

[[routes]]
method = "POST"
path = "/api/useraddresses/"
purpose = "order_fulfilment"
response = { shape = "address" }
[routes.request]
fields = [
  { select = "first_name", category = "user.name", transform = "encrypt" },
  { select = "last_name", category = "user.name", transform = "encrypt" },
  { select = "line1", category = "user.contact.address.delivery", transform = "encrypt" },
]

[[routes]]
method = "GET"
path = "/api/useraddresses/"
response = { shape = "address", records = "[*]" }

[shapes.order]
personal_objects = ["$", "shipping_address"]
fields = [
  { select = "email", category = "user.contact.email", token_format = "email" },
  { select = "shipping_address.first_name", category = "user.name" },
  { select = "shipping_address.last_name", category = "user.name" },
  { select = "shipping_address.line1", category = "user.contact.address.delivery" },
]

[[routes]]
method = "POST"
path = "/api/checkout/"
purpose = "order_fulfilment"
response = { shape = "order" }
[routes.request]
fields = [
  { select = "guest_email", category = "user.contact.email", transform = "tokenise", token_format = "email", \
    validate_as = "email", deterministic = true },
  { select = "shipping_address.first_name", category = "user.name", transform = "encrypt" },
  { select = "shipping_address.last_name", category = "user.name", transform = "encrypt" },
  { select = "shipping_address.line1", category = "user.contact.address.delivery", transform = "encrypt" },
]

[guests]
checkouts = [{ path = "/api/checkout/", email = "guest_email" }]

[audit]
account_routes = [{ method = "DELETE", path = "/api/login/", event = "logout" }]

[[adapter.models]]
model = "address.UserAddress"
subject = "user_id"
kind = "address"
shape = "address"
fields = { first_name = "erase", last_name = "erase", line1 = "erase" }

[[adapter.models]]
model = "auth.User"
subject = "id"
kind = "account"
fields = { email = "erase", username = "anonymise" }
"""
CSRF = "a" * 32
STREET = "1 Tea Lane"
GUEST_STREET = "7 Harbour Road"
PRODUCT_URL = "http://shop/api/products/1/"


async def scenario(data: Path) -> None:
    from django.core.asgi import get_asgi_application

    from privacy_middleware.middleware import PrivacyMiddleware
    from privacy_middleware.settings import Settings

    policy_file = data / "policy.toml"
    policy_file.write_text(POLICY)
    settings = Settings(
        policy_file=policy_file,
        database_url=f"sqlite+aiosqlite:///{data / 'privacy.db'}",
        data_dir=data,
        identity={"providers": ["django"]},
        shop_adapter="django",
        audit={"retention_interval_seconds": 0},
    )
    app = PrivacyMiddleware(get_asgi_application(), settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        client.cookies.set("csrftoken", CSRF)
        csrf = {"x-csrftoken": CSRF, "referer": "http://shop/"}
        registered = await client.post(
            "/api/register/",
            json={"email": "ada@example.com", "password1": "tea-and-scones-1", "password2": "tea-and-scones-1"},
            headers=csrf,
        )
        assert registered.status_code in (200, 201), registered.text
        login = await client.post(
            "/api/login/", json={"username": "ada@example.com", "password": "tea-and-scones-1"}, headers=csrf
        )
        assert login.status_code == 200, login.text
        assert client.cookies.get("sessionid"), "no session cookie"

        address = {
            "title": "Ms",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "line1": STREET,
            "line4": "Leeds",
            "postcode": "LS1 1AA",
            "country": "http://shop/api/countries/GB/",
        }
        created = await client.post("/api/useraddresses/", json=address, headers=csrf)
        assert created.status_code == 201, created.text
        assert created.json()["line1"] == STREET, created.text

        dump = "\n".join(sqlite3.connect(data / "shop.sqlite3").iterdump())
        assert STREET not in dump and "Lovelace" not in dump, "plaintext in the shop's database"
        assert "pe1." in dump

        mine = await client.get("/api/useraddresses/")
        assert mine.status_code == 200 and mine.json()[0]["line1"] == STREET, mine.text
        anonymous = await httpx.AsyncClient(transport=transport, base_url="http://shop").get("/api/useraddresses/")
        assert STREET not in anonymous.text

        await behind_the_proxy(data, app.settings.policy_file)
        await guest_checkout(transport, data)

        export = await client.get("/privacy/me/export")
        assert export.status_code == 200, export.text
        records = {r["kind"]: r for r in export.json()["shop"]["records"]}
        assert records["address"]["data"]["line1"] == STREET, records
        assert records["account"]["data"]["email"] == "ada@example.com"

        erased = await client.post("/privacy/me/erasure", json={}, headers=csrf)
        assert erased.status_code == 200 and erased.json()["status"] == "completed", erased.text
        dump = "\n".join(sqlite3.connect(data / "shop.sqlite3").iterdump())
        assert "ada@example.com" not in dump
    await app.runtime.stop()


async def guest_checkout(transport: httpx.ASGITransport, data: Path) -> None:
    """A guest buys without an account: the e-mail Oscar validates gets an e-mail-shaped token, the
    shipping address is encrypted under the guest's subject, and the guest sees the order in clear."""
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as guest:
        added = await guest.post("/api/basket/add-product/", json={"url": PRODUCT_URL, "quantity": 1})
        assert added.status_code == 200, added.text
        basket = (await guest.get("/api/basket/")).json()
        order = await guest.post(
            "/api/checkout/",
            json={
                "basket": basket["url"],
                "guest_email": "grace@example.com",
                "shipping_address": {
                    "first_name": "Grace",
                    "last_name": "Hopper",
                    "line1": GUEST_STREET,
                    "line4": "York",
                    "postcode": "YO1 1AA",
                    "country": "http://shop/api/countries/GB/",
                },
            },
        )
        assert order.status_code == 200, order.text
        placed = order.json()
        assert placed["shipping_address"]["line1"] == GUEST_STREET, placed
        assert placed["email"] == "grace@example.com", placed
    dump = "\n".join(sqlite3.connect(data / "shop.sqlite3").iterdump())
    assert GUEST_STREET not in dump and "grace@example.com" not in dump and "Hopper" not in dump
    assert "@privacy.invalid" in dump
    print("guest checkout encrypted:", dump.count("pe1."), "envelopes")


async def behind_the_proxy(data: Path, policy_file: Path) -> None:
    """The same shop behind `serve --upstream`: sessions resolved by the shop's who-am-I view."""
    import asyncio as aio

    from django.core.asgi import get_asgi_application

    from privacy_middleware.serve import build_proxy_app
    from privacy_middleware.settings import Settings

    sys.path.insert(0, str(HERE.parent))
    from support.servers import uvicorn_in_thread

    settings = Settings(
        policy_file=policy_file,
        database_url=f"sqlite+aiosqlite:///{data / 'privacy.db'}",
        data_dir=data,
        identity={"providers": ["session"], "session_whoami_url": "/api/me/"},
        shop_adapter="django",
        audit={"retention_interval_seconds": 0},
    )
    with uvicorn_in_thread(get_asgi_application()) as upstream:
        proxy = build_proxy_app(upstream, settings)
        transport = httpx.ASGITransport(app=proxy)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            client.cookies.set("csrftoken", CSRF)
            csrf = {"x-csrftoken": CSRF, "referer": "http://shop/"}
            login = await client.post(
                "/api/login/", json={"username": "ada@example.com", "password": "tea-and-scones-1"}, headers=csrf
            )
            assert login.status_code == 200, login.text
            mine = await client.get("/api/useraddresses/")
            assert mine.status_code == 200 and mine.json()[0]["line1"] == STREET, mine.text
            stranger = await client.get("/api/useraddresses/", headers={"cookie": "sessionid=forged"})
            assert STREET not in stranger.text
        await proxy.runtime.stop()
        await aio.sleep(0)


def main(data: Path) -> None:
    os.environ["OSCAR_ACCEPTANCE_DATA"] = str(data)
    os.environ["DJANGO_SETTINGS_MODULE"] = "oscar_project"
    sys.path[:0] = [str(HERE)]
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    from django.contrib.sites.models import Site
    from oscar.apps.address.models import Country

    Site.objects.update_or_create(id=1, defaults={"domain": "shop", "name": "shop"})
    Country.objects.create(iso_3166_1_a2="GB", iso_3166_1_a3="GBR", name="United Kingdom", is_shipping_country=True)
    from decimal import Decimal

    from oscar.test.factories import create_product

    assert create_product(price=Decimal("10.00"), num_in_stock=10).pk == 1
    asyncio.run(scenario(data))
    print("oscar acceptance passed")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
