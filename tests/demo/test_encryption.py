"""Field-level encryption through the demo shop: what the shop stores and who reads what."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from privacy_middleware.cli import main as cli
from support.demo import CARD, Demo

pytestmark = pytest.mark.anyio


def sqlite_copy(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def shop_rows(demo: Demo) -> str:
    """Everything the shop's own database holds, as one string to search for plaintext."""
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    try:
        dump = "\n".join(connection.iterdump())
    finally:
        connection.close()
    return dump


async def test_shop_database_holds_no_card_cvv_or_street_in_clear(demo: Demo) -> None:
    _, token = await demo.register()
    response = await demo.checkout(token)
    assert response.status_code == 201, response.text
    dump = shop_rows(demo)
    for secret in ("4242424242424242", CARD, "12 Marylebone Road"):
        assert secret not in dump
    assert '"cvv"' not in dump
    stored = response.json()  # what the customer sees back is in clear, but for the card's last four
    assert stored["payment"]["card"]["number"] == "\u2022" * 12 + "4242"
    assert stored["shipping_address"]["street"] == "12 Marylebone Road"
    assert "cvv" not in stored["payment"]["card"]


async def test_customer_reads_own_order_in_clear_and_partners_see_their_minimum(demo: Demo) -> None:
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    own = (await demo.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {token}"})).json()
    # The card's owner sees brand and last four by default ([cards].reveal grants more).
    assert own["payment"]["card"]["number"] == "\u2022" * 12 + "4242"
    assert own["payment"]["card"]["number_last4"] == "4242"
    assert own["payment"]["card"]["number_brand"] == "visa"
    assert own["billing_address"]["street"] == "12 Marylebone Road"

    logistics = await demo.partner("logistics-co")
    seen = (await demo.client.get("/orders", headers={"authorization": f"Bearer {logistics}"})).json()
    order = seen["orders"][0]
    assert order["shipping_address"] == {
        "name": "Ada Lovelace",
        "street": "12 Marylebone Road",
        "city": "London",
        "postal_code": "NW1 5LR",
        "country": "GB",
        "phone": "+44 20 7946 0018",
    }
    assert order["payment"]["card"] == {}
    assert order["billing_address"] == {} and order["customer"] == {}
    assert "note" not in order and "customer_id" not in order

    staff = await demo.partner("staff")
    support = (await demo.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {staff}"})).json()
    assert support["payment"]["card"]["number"] == "****4242"
    assert support["customer"]["email"] == "ada@example.com"


async def test_invalid_card_is_refused_and_nothing_forwarded(demo: Demo) -> None:
    _, token = await demo.register()
    body_card = {"number": "4242 4242 4242 4241", "cvv": "737", "exp_month": 12, "exp_year": 2030}
    response = await demo.checkout(token, payment={"card": body_card})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_card_number"
    assert "4241" not in response.text
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    try:  # nothing reached the shop: no order row, and the number nowhere in its database
        assert connection.execute("select count(*) from orders").fetchone()[0] == 0
    finally:
        connection.close()
    dump = shop_rows(demo)
    assert "4242 4242 4242 4241" not in dump and "4242424242424241" not in dump


async def test_tampered_ciphertext_is_never_shown_as_a_value(demo: Demo) -> None:
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    document: dict[str, Any] = orjson.loads(
        connection.execute("select document from orders where id = ?", (order_id,)).fetchone()[0]
    )
    envelope = document["payment"]["card"]["number"]
    assert envelope.startswith("pe1.")
    # Move the street's ciphertext into the card field: authentic bytes, wrong field.
    document["payment"]["card"]["number"] = document["shipping_address"]["street"]
    connection.execute("update orders set document = ? where id = ?", (orjson.dumps(document).decode(), order_id))
    connection.commit()
    connection.close()
    own = (await demo.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {token}"})).json()
    assert own["payment"]["card"]["number"] == {"error": "unreadable", "code": "decryption_failed"}
    assert own["shipping_address"]["street"] == "12 Marylebone Road"


async def test_rotate_rewrap_keep_data_readable(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    settings = demo.app.settings
    monkeypatch.setenv("PRIVACY_POLICY_FILE", str(settings.policy_file))
    monkeypatch.setenv("PRIVACY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PRIVACY_KEYS", settings.keys_url)
    # The operator runs the CLI next to the live server (its own event loop, as in a shell).
    for command in (["keys", "rotate"], ["keys", "rewrap"], ["keys", "status"]):
        assert await asyncio.to_thread(cli, command) == 0
    await demo.app.runtime.keys.close()  # drop cached keys: the next read unwraps under the new generation
    own = (await demo.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {token}"})).json()
    assert own["payment"]["card"]["number"] == "\u2022" * 12 + "4242"  # decrypted, then masked for its owner
    assert own["billing_address"]["street"] == "12 Marylebone Road"


async def test_erasure_makes_old_ciphertexts_unreadable_even_after_restoring_the_key_store(
    demo: Demo,
) -> None:
    customer_id, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    store_file = demo.data_dir / "privacy.db"
    backup = demo.data_dir / "privacy-backup.db"
    sqlite_copy(store_file, backup)  # yesterday's backup of the key store, taken the SQLite way
    keys = await demo.app.runtime.keys.get()
    await keys.erase_subject(customer_id)
    own = (await demo.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {token}"})).json()
    assert own["payment"]["card"]["number"] == {"error": "unreadable", "code": "decryption_failed"}
    # An operator restores yesterday's key store: the keyring's tombstone still wins.
    await demo.app.runtime.keys.close()
    await demo.app.runtime.database.dispose()
    sqlite_copy(backup, store_file)
    own = (await demo.client.get(f"/orders/{order_id}", headers={"authorization": f"Bearer {token}"})).json()
    assert own["payment"]["card"]["number"] == {"error": "unreadable", "code": "decryption_failed"}
    assert own["shipping_address"]["street"] == {"error": "unreadable", "code": "decryption_failed"}
