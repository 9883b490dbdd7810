"""Helpers for the conformance suite: the demo shop behind one seed's policy, and what it stored."""

from __future__ import annotations

import base64
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from privacy_middleware.demo.run import build_demo
from support.demo import Demo

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "examples" / "policies"
SEEDS = (
    "000_c708a063f9f7303d",
    "001_58e955c94cff9ce2",
    "002_4a9822b9d86f88a8",
    "003_f688c41ce3130c59",
    "004_c86c88c615e8bccd",
)
# What each seed's policy file and conformance module are called (examples/policies/<name>.toml,
# tests/conformance/test_<name>.py); the seed file name stays in their first line and in docs/promises.md.
NAMES = {
    "000_c708a063f9f7303d": "electronics_shop",
    "001_58e955c94cff9ce2": "independent_shop",
    "002_4a9822b9d86f88a8": "global_shop",
    "003_f688c41ce3130c59": "platform_shop",
    "004_c86c88c615e8bccd": "cross_border_shop",
}
CLIENT_IP = "198.51.100.20"
CONSENT_CSRF = {"x-privacy-consent": "1"}

Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]


def policy_path(seed: str) -> Path:
    return POLICIES / f"{NAMES[seed]}.toml"


@asynccontextmanager
async def seed_demo(
    seed: str, data_dir: Path, lifespan: Lifespan, *, policy_file: Path | None = None
) -> AsyncIterator[Demo]:
    """The demo shop behind `seed`'s policy (or a revision of it), reached over HTTP from CLIENT_IP."""
    app, shop = build_demo(
        data_dir, policy_file=policy_file or policy_path(seed), audit={"retention_interval_seconds": 0}
    )
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
    async with lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        yield Demo(app, shop, client, data_dir)


def revised_policy(seed: str, target: Path, version: str, effective: str) -> Path:
    """A copy of the seed's policy under a new version, as an operator publishes a revision."""
    text = policy_path(seed).read_text()
    lines = [
        f'version = "{version}"'
        if line.startswith("version = ")
        else f"effective_date = {effective}"
        if line.startswith("effective_date = ")
        else line
        for line in text.splitlines()
    ]
    target.write_text("\n".join(lines) + "\n")
    return target


def shop_dump(demo: Demo) -> str:
    """Everything the shop's own database holds, as one string to search for plaintext."""
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def tracked_events(demo: Demo) -> list[str]:
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    try:
        return [row[0] for row in connection.execute("select document from tracking_events")]
    except sqlite3.OperationalError:  # the shop never created its tables: nothing was tracked
        return []
    finally:
        connection.close()


def set_cookie_names(response: httpx.Response) -> set[str]:
    return {value.split("=", 1)[0] for value in response.headers.get_list("set-cookie")}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def consent(demo: Demo, **purposes: bool) -> httpx.Response:
    response = await demo.client.put("/privacy/consent", json={"purposes": purposes}, headers=CONSENT_CSRF)
    assert response.status_code == 200, response.text
    return response


async def partner_view(demo: Demo, client_id: str, path: str = "/orders") -> httpx.Response:
    token = await demo.partner(client_id)
    return await demo.client.get(path, headers=bearer(token))


ADDRESS = {
    "name": "Ada Lovelace",
    "street": "5 Canal Street",
    "city": "Leeds",
    "postal_code": "LS1 4AP",
    "country": "GB",
    "phone": "+44 113 496 0555",
}


async def assert_address_book_encrypted(demo: Demo, token: str) -> None:
    """A saved address is ciphertext in the shop's database and clear text to its owner."""
    saved = await demo.client.post("/me/addresses", json=ADDRESS, headers=bearer(token))
    assert saved.status_code == 201, saved.text
    assert saved.json()["street"] == ADDRESS["street"]
    dump = shop_dump(demo)
    assert ADDRESS["street"] not in dump and ADDRESS["phone"] not in dump
    listed = (await demo.client.get("/me/addresses", headers=bearer(token))).json()["addresses"]
    assert [(a["street"], a["phone"]) for a in listed] == [(ADDRESS["street"], ADDRESS["phone"])]


async def flushed_access_log(demo: Demo, token: str) -> dict[str, Any]:
    await demo.app.runtime.audit.flush()
    response = await demo.client.get("/privacy/me/access-log", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def receipt_claims(receipt: str) -> dict[str, Any]:
    """The claims of a compact JWS erasure receipt (its signature is checked by the rights tests)."""
    payload = receipt.split(".")[1]
    claims: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Monday-Friday days after `start` up to and including `end`."""
    days = (start + dt.timedelta(days=n) for n in range(1, (end - start).days + 1))
    return sum(1 for day in days if day.weekday() < 5)


async def ordering_customer(demo: Demo) -> str:
    """A registered customer who placed the standard checkout; their bearer token."""
    _, token = await demo.register()
    await demo.checkout(token)
    return token


async def exported(demo: Demo, token: str) -> httpx.Response:
    """The customer's own export; it answered 200 and holds their delivery address."""
    export = await demo.client.get("/privacy/me/export", headers=bearer(token))
    assert export.status_code == 200 and "12 Marylebone Road" in export.text
    return export


async def assert_rectified(demo: Demo, token: str, field: str, value: str) -> None:
    """A rectification of one profile field is accepted and the shop's profile shows the new value."""
    response = await demo.client.post(
        "/privacy/me/rectification", json={"changes": {field: value}}, headers=bearer(token)
    )
    assert response.status_code in (200, 202)
    assert (await demo.client.get("/me", headers=bearer(token))).json()[field] == value


async def assert_erased(demo: Demo, token: str, *gone: str) -> None:
    """The customer's erasure is accepted and none of `gone` is left in the shop's database."""
    assert (await demo.client.post("/privacy/me/erasure", headers=bearer(token))).status_code in (200, 202)
    dump = shop_dump(demo)
    for value in gone:
        assert value not in dump


async def partner_order(demo: Demo, client_id: str) -> dict[str, Any]:
    """The first order in the partner's own view of `/orders`."""
    return dict((await partner_view(demo, client_id)).json()["orders"][0])


async def assert_minor_refused(demo: Demo, registration: dict[str, str]) -> None:
    """A minor's registration is refused (403 below_minimum_age) and leaves no trace in the shop."""
    response = await demo.client.post("/auth/register", json={"password": "correct horse battery", **registration})
    assert response.status_code == 403
    assert response.json()["code"] == "below_minimum_age"
    assert registration["email"] not in shop_dump(demo)
