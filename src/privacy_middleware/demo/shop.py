"""A small but realistic headless shop API, standing in for a real shop behind the middleware.

It knows nothing about privacy: it stores what it receives (ciphertext, when the middleware
encrypts) and returns it. Its own SQLite database lives in the data directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jwt
import orjson
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..keyfiles import load_or_create_ed25519

SHOP_ISSUER = "demo-shop"
SHOP_AUDIENCE = "demo-shop-api"
# The storefront loads only its own files and the middleware's banner (same origin).
STOREFRONT_CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

metadata = sa.MetaData()
customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
addresses = sa.Table(
    "addresses",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(40), nullable=False, index=True),
    sa.Column("address", sa.JSON, nullable=False),
)
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(40), nullable=False, index=True),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
events = sa.Table(
    "tracking_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

PRODUCTS = [
    {"sku": "TEA-001", "name": "Green tea, 100 g", "price": 8.50},
    {"sku": "MUG-002", "name": "Stoneware mug", "price": 14.00},
    {"sku": "POT-003", "name": "Cast-iron teapot", "price": 49.90},
]
PRICES: dict[str, float] = {str(p["sku"]): float(p["price"]) for p in PRODUCTS}  # type: ignore[arg-type]
PARTNERS = {
    # client_id: (recipient, purpose)
    "logistics-co": ("logistics", "delivery"),
    "pay-co": ("payment", "payment"),
    "stats-co": ("analytics", "analytics"),
    "ads-co": ("marketing", "marketing"),
}


def json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"{salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    salt_hex, _, _ = stored.partition("$")
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt_hex)), stored)


class DemoShop:
    """Holds the shop's database engine and signing key; `app` is its Starlette application."""

    def __init__(
        self,
        data_dir: Path,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        partner_secret: str = "demo-partner-secret",
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(
            f"sqlite+aiosqlite:///{data_dir / 'shop.db'}", hide_parameters=True
        )
        self.signing_key = signing_key or load_or_create_ed25519(data_dir / "shop-signing-key.pem", "shop signing key")
        self.partner_secret = partner_secret
        self._ready = False
        self.app = Starlette(routes=self.routes(), lifespan=self._lifespan)

    @property
    def public_key_pem(self) -> str:
        return (
            self.signing_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> Any:
        await self.ensure_schema()
        yield
        await self.engine.dispose()

    async def ensure_schema(self) -> None:
        """Create the tables once; several instances may share the shop's file and race to do it:
        the loser sees "already exists" and, on its next look, finds the tables made."""
        for attempt in range(5):
            if self._ready:
                return
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(metadata.create_all)
                self._ready = True
            except sa.exc.OperationalError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))

    def token(self, claims: dict[str, Any], ttl: int = 3600) -> str:
        now = int(time.time())
        body = {"iss": SHOP_ISSUER, "aud": SHOP_AUDIENCE, "iat": now, "exp": now + ttl, **claims}
        return jwt.encode(body, self.signing_key, algorithm="EdDSA")

    def caller(self, request: Request) -> dict[str, Any] | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        try:
            return jwt.decode(
                header[7:],
                self.signing_key.public_key(),
                algorithms=["EdDSA"],
                audience=SHOP_AUDIENCE,
                issuer=SHOP_ISSUER,
            )
        except jwt.PyJWTError:
            return None

    def routes(self) -> list[Route]:
        return [
            Route("/", self.storefront, methods=["GET"]),
            Route("/storefront/{name}", self.storefront_file, methods=["GET"]),
            Route("/products", self.products, methods=["GET"]),
            Route("/auth/register", self.register, methods=["POST"]),
            Route("/auth/login", self.login, methods=["POST"]),
            Route("/auth/logout", self.logout, methods=["POST"]),
            Route("/partners/token", self.partner_token, methods=["POST"]),
            Route("/me", self.me, methods=["GET", "PATCH", "DELETE"]),
            Route("/me/addresses", self.my_addresses, methods=["GET", "POST"]),
            Route("/checkout", self.checkout, methods=["POST"]),
            Route("/orders", self.list_orders, methods=["GET"]),
            Route("/orders/{order_id}", self.get_order, methods=["GET"]),
            Route("/track", self.track, methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
        ]

    async def health(self, request: Request) -> Response:
        return json({"status": "ok"})

    async def storefront(self, request: Request) -> Response:
        """A small storefront page that loads the consent banner from the middleware."""
        return self._storefront("index.html")

    async def storefront_file(self, request: Request) -> Response:
        return self._storefront(request.path_params["name"])

    def _storefront(self, name: str) -> Response:
        types = {"index.html": "text/html", "store.js": "text/javascript", "store.css": "text/css"}
        if name not in types:
            return json({"error": "not found"}, 404)
        body = resources.files("privacy_middleware.demo").joinpath("storefront", name).read_bytes()
        return Response(
            body,
            media_type=types[name],
            headers={"content-security-policy": STOREFRONT_CSP, "x-content-type-options": "nosniff"},
        )

    async def products(self, request: Request) -> Response:
        response = json({"products": PRODUCTS})
        if "session" not in request.cookies:
            response.set_cookie("session", secrets.token_urlsafe(16), httponly=True, samesite="lax")
        response.set_cookie("_ga", f"GA1.1.{secrets.randbelow(10**9)}.{int(time.time())}", max_age=63072000)
        response.set_cookie("_fbp", f"fb.1.{int(time.time())}.{secrets.randbelow(10**9)}", max_age=7776000)
        return response

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        return body if isinstance(body, dict) else {}

    async def register(self, request: Request) -> Response:
        await self.ensure_schema()
        body = await self._body(request)
        email, password = body.get("email"), body.get("password")
        if not isinstance(email, str) or not isinstance(password, str) or len(password) < 8:
            return json({"error": "email and a password of 8+ characters are required"}, 400)
        customer_id = f"cus_{uuid.uuid4().hex[:16]}"
        profile = {k: body[k] for k in ("name", "phone", "birth_date", "marketing_opt_in") if k in body}
        async with self.engine.begin() as conn:
            taken = await conn.scalar(sa.select(customers.c.id).where(customers.c.email == email))
            if taken:
                return json({"error": "this e-mail is already registered"}, 409)
            await conn.execute(
                customers.insert().values(
                    id=customer_id,
                    email=email,
                    password_hash=hash_password(password),
                    profile=profile,
                    created_at=datetime.now(UTC),
                )
            )
        return json({"id": customer_id, "token": self.token({"sub": customer_id})}, 201)

    async def login(self, request: Request) -> Response:
        await self.ensure_schema()
        body = await self._body(request)
        email, password = body.get("email"), body.get("password")
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(customers).where(customers.c.email == str(email)))).first()
        if row is None or not isinstance(password, str) or not check_password(password, row.password_hash):
            return json({"error": "wrong e-mail or password"}, 401)
        return json({"id": row.id, "token": self.token({"sub": row.id})})

    async def logout(self, request: Request) -> Response:
        return Response(status_code=204)

    async def partner_token(self, request: Request) -> Response:
        body = await self._body(request)
        client_id = str(body.get("client_id", ""))
        secret = str(body.get("client_secret", ""))
        if client_id == "staff" and hmac.compare_digest(secret, self.partner_secret):
            return json(
                {
                    "access_token": self.token({"sub": "staff-1", "scope": "staff orders:read"}),
                    "token_type": "Bearer",
                }
            )
        if client_id not in PARTNERS or not hmac.compare_digest(secret, self.partner_secret):
            return json({"error": "invalid_client"}, 401)
        recipient, purpose = PARTNERS[client_id]
        token = self.token({"sub": client_id, "recipient": recipient, "purpose": purpose, "scope": "orders:read"})
        return json({"access_token": token, "token_type": "Bearer"})

    async def me(self, request: Request) -> Response:
        await self.ensure_schema()
        caller = self.caller(request)
        if caller is None or not str(caller.get("sub", "")).startswith("cus_"):
            return json({"error": "sign in"}, 401)
        customer_id = caller["sub"]
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(customers).where(customers.c.id == customer_id))).first()
            if row is None:
                return json({"error": "no such customer"}, 404)
            if request.method == "DELETE":
                await conn.execute(customers.delete().where(customers.c.id == customer_id))
                await conn.execute(addresses.delete().where(addresses.c.customer_id == customer_id))
                return Response(status_code=204)
            profile = dict(row.profile)
            email = row.email
            if request.method == "PATCH":
                body = await self._body(request)
                profile.update({k: body[k] for k in ("name", "phone", "birth_date") if k in body})
                email = body.get("email", email)
                await conn.execute(
                    customers.update().where(customers.c.id == customer_id).values(profile=profile, email=email)
                )
        return json({"id": customer_id, "email": email, **profile})

    async def my_addresses(self, request: Request) -> Response:
        await self.ensure_schema()
        caller = self.caller(request)
        if caller is None:
            return json({"error": "sign in"}, 401)
        async with self.engine.begin() as conn:
            if request.method == "POST":
                address = await self._body(request)
                address_id = f"adr_{uuid.uuid4().hex[:12]}"
                await conn.execute(addresses.insert().values(id=address_id, customer_id=caller["sub"], address=address))
                return json({"id": address_id, "customer_id": caller["sub"], **address}, 201)
            rows = await conn.execute(sa.select(addresses).where(addresses.c.customer_id == caller["sub"]))
            return json({"addresses": [{"id": r.id, "customer_id": r.customer_id, **r.address} for r in rows]})

    async def checkout(self, request: Request) -> Response:
        await self.ensure_schema()
        caller = self.caller(request)
        if caller is None:
            return json({"error": "sign in to check out"}, 401)
        body = await self._body(request)
        items = body.get("items") or []
        try:
            total = round(sum(float(PRICES[i["sku"]]) * int(i.get("qty", 1)) for i in items), 2)
        except (KeyError, TypeError, ValueError):
            return json({"error": "unknown product"}, 400)
        order_id = f"ord_{uuid.uuid4().hex[:12]}"
        document = {
            "id": order_id,
            "customer_id": caller["sub"],
            "status": "paid",
            "items": items,
            "total": total,
            "currency": "EUR",
            "customer": body.get("customer", {}),
            "shipping_address": body.get("shipping_address", {}),
            "billing_address": body.get("billing_address", {}),
            "payment": body.get("payment", {}),
            "note": body.get("note", ""),
            "created_at": datetime.now(UTC).isoformat(),
        }
        async with self.engine.begin() as conn:
            await conn.execute(
                orders.insert().values(
                    id=order_id, customer_id=caller["sub"], document=document, created_at=datetime.now(UTC)
                )
            )
        return json(document, 201)

    async def list_orders(self, request: Request) -> Response:
        await self.ensure_schema()
        caller = self.caller(request)
        if caller is None:
            return json({"error": "sign in"}, 401)
        query = sa.select(orders.c.document).order_by(orders.c.created_at)
        if "orders:read" not in str(caller.get("scope", "")).split():
            query = query.where(orders.c.customer_id == caller["sub"])
        async with self.engine.connect() as conn:
            documents = (await conn.execute(query)).scalars().all()
        return json({"orders": list(documents)})

    async def get_order(self, request: Request) -> Response:
        await self.ensure_schema()
        caller = self.caller(request)
        if caller is None:
            return json({"error": "sign in"}, 401)
        async with self.engine.connect() as conn:
            document = await conn.scalar(
                sa.select(orders.c.document).where(orders.c.id == request.path_params["order_id"])
            )
        if document is None:
            return json({"error": "no such order"}, 404)
        staff = "orders:read" in str(caller.get("scope", "")).split()
        if not staff and document["customer_id"] != caller["sub"]:
            return json({"error": "no such order"}, 404)
        return json(document)

    async def track(self, request: Request) -> Response:
        await self.ensure_schema()
        event = await self._body(request)
        async with self.engine.begin() as conn:
            await conn.execute(events.insert().values(document=event, received_at=datetime.now(UTC)))
        return json({"accepted": True}, 202)
