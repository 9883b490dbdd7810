"""Subject rights through the demo shop as a customer uses them: restriction and objection reach
partner views at once; closing an account through the shop erases it at once."""

from __future__ import annotations

import sqlite3

import pytest

from support.demo import Demo

pytestmark = pytest.mark.anyio


async def logistics_view(demo: Demo) -> list[dict]:  # type: ignore[type-arg]
    token = await demo.partner("logistics-co")
    return list((await demo.client.get("/orders", headers={"authorization": f"Bearer {token}"})).json()["orders"])


async def test_restriction_stops_partner_views_at_once_and_lifting_it_restores_them(demo: Demo) -> None:
    _, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    await demo.checkout(token)
    assert (await logistics_view(demo))[0]["shipping_address"]["street"] == "12 Marylebone Road"
    assert (await demo.client.post("/privacy/me/restriction", headers=auth)).status_code == 200
    [order] = await logistics_view(demo)
    assert order["shipping_address"] == {} and "customer_id" not in order
    analytics = await demo.partner("stats-co")
    [seen] = (await demo.client.get("/orders", headers={"authorization": f"Bearer {analytics}"})).json()["orders"]
    assert "customer_id" not in seen and seen["shipping_address"] == {}
    # The customer still sees everything of their own.
    own = (await demo.client.get("/orders", headers=auth)).json()["orders"][0]
    assert own["shipping_address"]["street"] == "12 Marylebone Road"
    await demo.client.delete("/privacy/me/restriction", headers=auth)
    assert (await logistics_view(demo))[0]["shipping_address"]["street"] == "12 Marylebone Road"


async def test_objection_to_analytics_removes_the_analytics_view_only(demo: Demo) -> None:
    _, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    await demo.checkout(token)
    response = await demo.client.post("/privacy/me/objection", headers=auth, json={"purposes": ["analytics"]})
    assert response.status_code == 200
    analytics = await demo.partner("stats-co")
    [seen] = (await demo.client.get("/orders", headers={"authorization": f"Bearer {analytics}"})).json()["orders"]
    assert "customer_id" not in seen and seen["shipping_address"] == {}
    assert (await logistics_view(demo))[0]["shipping_address"]["street"] == "12 Marylebone Road"


async def test_closing_the_account_in_the_shop_erases_everything_at_once(demo: Demo) -> None:
    customer, token = await demo.register()
    auth = {"authorization": f"Bearer {token}"}
    order = (await demo.checkout(token)).json()
    closed = await demo.client.delete("/me", headers=auth)
    assert closed.status_code == 204
    connection = sqlite3.connect(demo.data_dir / "shop.db")
    dump = "\n".join(connection.iterdump())
    connection.close()
    assert "Marylebone" not in dump and "ada@example.com" not in dump and customer not in dump
    assert "pe1." not in dump
    assert order["id"] in dump and str(order["total"]) in dump  # the anonymised order keeps its total
    requests = (await demo.client.get("/privacy/me/requests", headers=auth)).json()["requests"]
    assert [(r["type"], r["status"]) for r in requests] == [("erasure", "completed")]
