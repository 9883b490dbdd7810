"""`policy draft`: a reviewed-by-a-person first policy from the shop's own description of itself."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from privacy_middleware.cli import main
from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.demo.shop import DemoShop
from privacy_middleware.policy.draft import add_example, coverage, from_app, from_graphql, from_openapi, render
from privacy_middleware.policy.lexicon import classify
from privacy_middleware.policy.load import load_policy
from support.demo import checkout_body


class Address(BaseModel):
    name: str
    street: str
    city: str
    postal_code: str
    country: str
    phone: str | None = None


class Card(BaseModel):
    number: str
    cvv: str
    exp_month: int
    exp_year: int
    holder: str


class Payment(BaseModel):
    card: Card


class Customer(BaseModel):
    email: str
    name: str


class Checkout(BaseModel):
    customer: Customer
    shipping_address: Address
    billing_address: Address
    payment: Payment
    note: str = ""


class StoredCard(BaseModel):
    number: str
    exp_month: int
    exp_year: int
    holder: str


class StoredPayment(BaseModel):
    card: StoredCard


class Order(BaseModel):
    id: str
    customer_id: str
    customer: Customer
    shipping_address: Address
    billing_address: Address
    payment: StoredPayment
    note: str
    total: float


class Profile(BaseModel):
    id: str
    email: str
    name: str
    phone: str
    birth_date: str


class OrderList(BaseModel):
    orders: list[Order]


class Login(BaseModel):
    email: str
    password: str


class Registration(BaseModel):
    email: str
    password: str
    birth_date: str


class Event(BaseModel):
    visitor_id: str
    ip: str
    event: str


class Product(BaseModel):
    sku: str
    name: str
    price: float


def fastapi_shop() -> FastAPI:
    app = FastAPI(title="FastAPI tea shop")

    @app.post("/checkout", response_model=Order)
    def checkout(body: Checkout) -> Any: ...

    @app.get("/orders", response_model=OrderList)
    def orders() -> Any: ...

    @app.get("/orders/{order_id}", response_model=Order)
    def order(order_id: str) -> Any: ...

    @app.post("/auth/login")
    def login(body: Login) -> Any: ...

    @app.post("/auth/register")
    def register(body: Registration) -> Any: ...

    @app.get("/me", response_model=Profile)
    def profile() -> Any: ...

    @app.delete("/me")
    def close_account() -> Any: ...

    @app.post("/track")
    def track(body: Event) -> Any: ...

    @app.get("/products", response_model=list[Product])
    def products() -> Any: ...

    return app


def rules_of(draft_text: str, path: str, method: str, side: str) -> dict[str, dict[str, Any]]:
    import tomllib

    document = tomllib.loads(draft_text)
    for route in document.get("routes", []):
        if route["path"] == path and route["method"] == method:
            return {rule["select"]: rule for rule in route[side]["fields"]}
    raise AssertionError(f"no {method} {path} in the draft")


def test_draft_from_the_openapi_of_a_fastapi_shop_with_the_demo_contract() -> None:
    """The demo shop's API as a typed FastAPI app: its OpenAPI document alone, against the reviewed demo policy."""
    measured = coverage(from_app(fastapi_shop()), load_policy(demo_policy_path()))
    print(f"FastAPI: found {measured.found} of {measured.declared} protected fields ({measured.share:.0%})")
    assert measured.share >= 0.9, measured.missed


def test_draft_of_a_fastapi_shop_is_a_valid_policy_in_report_mode(tmp_path: Path) -> None:
    text = render(from_app(fastapi_shop()))
    path = tmp_path / "draft.toml"
    path.write_text(text)
    policy = load_policy(path)
    assert policy.policy.mode == "report"  # nothing is enforced until a person says so
    checkout = rules_of(text, "/checkout", "POST", "request")
    assert checkout["payment.card.number"]["transform"] == "encrypt"
    assert checkout["payment.card.number"]["validate_as"] == "card_number"
    assert checkout["payment.card.cvv"]["transform"] == "strip"
    assert checkout["shipping_address.street"]["category"] == "user.contact.address.delivery.street"
    assert checkout["billing_address.street"]["category"] == "user.contact.address.billing"
    assert checkout["payment.card.holder"]["category"] == "user.financial.card.holder"
    orders = next(r for r in policy.routes if r.path == "/orders")
    assert orders.response is not None and orders.response.records == "$.orders[*]"
    assert orders.response.subject == "customer_id"
    assert [(r.path, r.username_field) for r in policy.audit.logins] == [("/auth/login", "email")]
    assert {(r.path, r.event) for r in policy.audit.account_routes} == {
        ("/auth/register", "registration"),
        ("/me", "account_closure"),
    }
    assert policy.tracking.routes[0].path == "/track"
    assert policy.tracking.routes[0].pseudonymise == ["visitor_id"]
    assert policy.tracking.routes[0].truncate_ip == ["ip"]
    assert policy.minors.routes[0].birth_date == "birth_date"
    # A product's name is not a person's: the catalogue gets no rules.
    assert all(r.path != "/products" for r in policy.routes)
    # Every proposal says why.
    assert "PCI DSS" in text


@pytest.mark.parametrize(
    ("name", "ancestors", "category"),
    [
        ("Straße", ["lieferadresse"], "user.contact.address.delivery.street"),
        ("PLZ", ["lieferadresse"], "user.contact.address.delivery.postal_code"),
        ("Vorname", ["kunde"], "user.name"),
        ("Geburtsdatum", [], "user.demographic.birth_date"),
        ("codigoPostal", ["direccionFacturacion"], "user.contact.address.billing"),
        ("numeroTarjeta", [], "user.financial.card.number"),
        ("telefono", [], "user.contact.phone"),
        ("手机", ["收货地址"], "user.contact.phone"),
        ("详细地址", ["收货地址"], "user.contact.address.delivery.street"),
        ("身份证号", [], "user.government_id"),
        ("邮箱", [], "user.contact.email"),
        ("shippingAddressLine1", [], "user.contact.address.delivery.street"),
        ("securityCode", ["card"], "user.financial.card.cvv"),
        ("ipAddress", [], "user.device.ip_address"),
    ],
)
def test_personal_fields_are_recognised_in_several_languages(name: str, ancestors: list[str], category: str) -> None:
    found = classify(name, ancestors)
    assert found is not None and found.category == category


@pytest.mark.parametrize(
    ("name", "ancestors"), [("name", ["product"]), ("number", ["order"]), ("sku", []), ("total", [])]
)
def test_catalogue_and_order_fields_are_not_personal(name: str, ancestors: list[str]) -> None:
    assert classify(name, ancestors) is None


def test_fields_are_recognised_by_format_and_example_value() -> None:
    assert classify("contact", [], fmt="email").category == "user.contact.email"  # type: ignore[union-attr]
    assert classify("pan_value", [], example="4242 4242 4242 4242").category == "user.financial.card.number"  # type: ignore[union-attr]
    assert classify("ref", [], example="4242 4242 4242 4241") is None  # fails Luhn: an order number


def test_openapi_refs_all_of_and_drf_paths(tmp_path: Path) -> None:
    document = {
        "openapi": "3.1.0",
        "info": {"title": "DRF shop"},
        "paths": {
            "/api/addresses/<int:pk>/": {
                "put": {
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Addr"}}}},
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Addr"}}}}
                    },
                }
            },
            "/api/basket/": {"get": {"responses": {"200": {"description": "no schema"}}}},
            "/api/uploads/": {"post": {"responses": {"201": {"description": "no schema"}}}},
        },
        "components": {
            "schemas": {
                "Base": {
                    "type": "object",
                    "properties": {"first_name": {"type": "string"}, "self": {"$ref": "#/components/schemas/Base"}},
                },
                "Addr": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Base"},
                        {
                            "type": "object",
                            "properties": {
                                "line1": {"type": "string"},
                                "postcode": {"type": "string"},
                                "contact": {"type": "string", "format": "email"},
                            },
                        },
                    ]
                },
            }
        },
    }
    draft = from_openapi(document)
    text = render(draft)
    rules = rules_of(text, "/api/addresses/{pk}/", "PUT", "request")
    assert set(rules) >= {"line1", "postcode", "contact", "first_name"}
    assert rules["contact"]["category"] == "user.contact.email"
    # A body without a description is listed for a person to decide, never silently passed.
    assert "# POST /api/uploads/: its request body is not described" in text
    (tmp_path / "p.toml").write_text(text)
    load_policy(tmp_path / "p.toml")


def test_graphql_introspection_saleor_style() -> None:
    def field(name: str, type_name: str, kind: str = "SCALAR") -> dict[str, Any]:
        return {"name": name, "type": {"kind": "NON_NULL", "name": None, "ofType": {"kind": kind, "name": type_name}}}

    introspection = {
        "data": {
            "__schema": {
                "queryType": {"name": "Query"},
                "mutationType": None,
                "types": [
                    {"kind": "OBJECT", "name": "Query", "fields": [field("me", "User", "OBJECT")]},
                    {
                        "kind": "OBJECT",
                        "name": "User",
                        "fields": [
                            field("email", "String"),
                            field("firstName", "String"),
                            field("defaultShippingAddress", "Address", "OBJECT"),
                        ],
                    },
                    {
                        "kind": "OBJECT",
                        "name": "Address",
                        "fields": [
                            field("streetAddress1", "String"),
                            field("postalCode", "String"),
                            field("phone", "String"),
                        ],
                    },
                ],
            }
        }
    }
    draft = from_graphql(introspection)
    selects = {f.select: f.suggestion.category for f in draft.routes[0].response.fields}  # type: ignore[union-attr]
    assert selects["me.email"] == "user.contact.email"
    assert selects["me.firstName"] == "user.name"
    assert selects["me.defaultShippingAddress.streetAddress1"] == "user.contact.address.delivery.street"
    assert selects["me.defaultShippingAddress.postalCode"] == "user.contact.address.delivery.postal_code"


@pytest.mark.anyio
async def test_draft_from_the_demo_shops_real_traffic_finds_its_protected_fields(tmp_path: Path) -> None:
    """Record the bare demo shop's real bodies, draft from them, and measure against the reviewed policy."""
    shop = DemoShop(tmp_path)
    transport = httpx.ASGITransport(app=shop.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        registration = {
            "email": "ada@example.com",
            "password": "correct horse",
            "name": "Ada",
            "phone": "+44 20 7946 0018",
            "birth_date": "1990-04-01",
        }
        token = (await client.post("/auth/register", json=registration)).json()["token"]
        headers = {"authorization": f"Bearer {token}"}
        body = checkout_body()
        created = (await client.post("/checkout", json=body, headers=headers)).json()
        listed = (await client.get("/orders", headers=headers)).json()
        one = (await client.get(f"/orders/{created['id']}", headers=headers)).json()
        me = (await client.get("/me", headers=headers)).json()
    await shop.engine.dispose()
    draft = from_app(shop.app, "Demo Tea Shop")
    assert ("POST", "/checkout", "its request body is not described") in draft.undecided
    add_example(draft, "POST", "/checkout", "request", body)
    add_example(draft, "POST", "/checkout", "response", created)
    add_example(draft, "GET", "/orders", "response", listed)
    add_example(draft, "GET", "/orders/{order_id}", "response", one)
    add_example(draft, "GET", "/me", "response", me)
    add_example(draft, "POST", "/auth/register", "request", registration)
    measured = coverage(draft, load_policy(demo_policy_path()))
    print(f"demo: found {measured.found} of {measured.declared} protected fields ({measured.share:.0%})")
    assert measured.share >= 0.9, measured.missed
    (tmp_path / "draft.toml").write_text(render(draft))
    load_policy(tmp_path / "draft.toml")


def test_cli_writes_a_draft_and_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    module = tmp_path / "drafted_shop.py"
    module.write_text(
        textwrap.dedent(
            """
            from fastapi import FastAPI
            from pydantic import BaseModel

            class Signup(BaseModel):
                email: str
                password: str
                phone: str

            app = FastAPI(title="Tiny shop")

            @app.post("/signup")
            def signup(body: Signup) -> dict[str, str]:
                return {}
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "policy.toml"
    assert main(["policy", "draft", "--app", "drafted_shop:app", "--out", str(out)]) == 0
    assert load_policy(out).policy.name == "Tiny shop"
    assert main(["policy", "draft", "--app", "drafted_shop:app", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["policy", "check", str(out)]) == 0
    example = tmp_path / "signup.json"
    example.write_bytes(orjson.dumps({"email": "a@example.com", "password": "x", "phone": "+4930123456"}))
    assert main(["policy", "draft", "--example", f"POST /signup=request:{example}", "--against", str(out)]) == 0
    assert "found 1 of 1 protected fields" in capsys.readouterr().err
    sys.modules.pop("drafted_shop", None)
