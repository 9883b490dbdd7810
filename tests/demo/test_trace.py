"""Decision traces through the demo shop: an officer sees why, step by step and field by field,
never a value; anyone else gets 403; the trace is audited."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from privacy_middleware.audit.query import search
from privacy_middleware.cli import main as cli
from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.pipeline.trace import read_trace
from privacy_middleware.policy.load import load_policy
from privacy_middleware.replay import replay
from support.demo import Demo, checkout_body

pytestmark = pytest.mark.anyio


def officer(demo: Demo) -> str:
    return demo.shop.token({"sub": "officer-1", "scope": "privacy:admin"})


async def test_checkout_trace_names_each_step_and_field_transform(demo: Demo) -> None:
    _, token = await demo.register()
    response = await demo.client.post(
        "/checkout",
        json=checkout_body(),
        headers={"authorization": f"Bearer {token}", "privacy-trace": officer(demo)},
    )
    assert response.status_code == 201
    trace = read_trace(response.headers["privacy-trace"])
    assert trace["route"]["method"] == "POST" and trace["route"]["template"] == "/checkout"
    assert trace["route"]["recipient"] == "customer"
    protect = [s for s in trace["steps"] if s["step"] == "protect_request"]
    assert protect == [
        {
            "step": "protect_request",
            "capability": "request_fields",
            "mode": "enforce",
            "policy_key": "routes[0].request",
            "hook": "on_request",
            "decision": "rewrote",
        }
    ]
    fields = {(f["direction"], f["select"]): f for f in trace["fields"]}
    card = fields[("request", "payment.card.number")]
    assert card["transform"] == "encrypt" and card["reason"].startswith("routes[0].request.fields[0]")
    assert fields[("request", "payment.card.cvv")]["transform"] == "strip"
    text = orjson.dumps(trace).decode()
    for value in ("4242", "Marylebone", "737", "ada@example.com"):
        assert value not in text


async def test_a_refusal_carries_its_trace_with_code_and_field(demo: Demo) -> None:
    _, token = await demo.register()
    body = checkout_body(note="card 4242 4242 4242 4242")
    response = await demo.client.post(
        "/checkout", json=body, headers={"authorization": f"Bearer {token}", "privacy-trace": officer(demo)}
    )
    assert response.status_code == 422
    trace = read_trace(response.headers["privacy-trace"])
    refused = [s for s in trace["steps"] if s["decision"] == "refused"]
    assert refused == [
        {
            "step": "free_text",
            "capability": "free_text",
            "mode": "enforce",
            "policy_key": "routes[0].free_text",
            "hook": "on_request",
            "decision": "refused",
            "code": "forbidden_data_detected",
            "field": "note",
        }
    ]


async def test_partner_trace_explains_each_response_field_by_its_grant(demo: Demo) -> None:
    _, token = await demo.register()
    order_id = (await demo.checkout(token)).json()["id"]
    carrier = await demo.partner("logistics-co")
    response = await demo.client.get(
        f"/orders/{order_id}", headers={"authorization": f"Bearer {carrier}", "privacy-trace": officer(demo)}
    )
    assert response.status_code == 200
    trace = read_trace(response.headers["privacy-trace"])
    assert trace["route"]["parameters"] == ["order_id"] and order_id not in orjson.dumps(trace).decode()
    fields = {f["select"]: f for f in trace["fields"] if f["direction"] == "response"}
    assert fields["shipping_address.street"]["transform"] == "keep"
    assert "recipients.logistics.sees" in fields["shipping_address.street"]["reason"]
    assert fields["payment.card.number"]["transform"] == "drop"
    disclose = [s for s in trace["steps"] if s["step"] == "disclose_response"]
    assert disclose[0]["decision"] == "rewrote" and disclose[0]["policy_key"] == "routes[2].response"


async def test_tracking_drop_is_traced_as_an_answer(demo: Demo) -> None:
    response = await demo.client.post("/track", json={"visitor_id": "v"}, headers={"privacy-trace": officer(demo)})
    assert response.status_code == 204
    trace = read_trace(response.headers["privacy-trace"])
    [gate] = [s for s in trace["steps"] if s["step"] == "tracking"]
    assert gate["decision"] == "answered" and gate["code"] == "status_204"
    assert gate["policy_key"] == "tracking.routes[0]"


async def test_only_an_officer_may_trace_and_each_trace_is_audited(demo: Demo) -> None:
    _, token = await demo.register()
    response = await demo.client.get("/orders", headers={"authorization": f"Bearer {token}", "privacy-trace": token})
    assert response.status_code == 403
    assert response.json()["code"] == "trace_forbidden"
    assert "privacy-trace" not in response.headers
    await demo.client.get("/orders", headers={"authorization": f"Bearer {token}", "privacy-trace": officer(demo)})
    await demo.app.runtime.audit.flush()
    reads = await search(demo.app.runtime.database, kinds=["api_activity.admin_read"])
    assert [r.principal for r in reads] == ["officer-1"]
    assert reads[0].detail["query"] == {"trace": "GET /orders"}


def test_policy_explain_shows_the_request_side_from_the_same_views(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli(["policy", "explain", str(demo_policy_path()), "--recipient", "logistics", "--route", "POST /checkout"])
        == 0
    )
    out = capsys.readouterr().out
    assert "payment.card.number" in out and "routes[0].request.fields[0]: transform = 'encrypt'" in out


async def test_a_replayed_request_shape_gets_the_live_requests_trace(demo: Demo) -> None:
    """`policy trace` replays the shape of a request (no values) through the middleware: its trace is
    the one the Privacy-Trace header carried on the live request, step by step and field by field."""
    _, token = await demo.register()
    body = checkout_body()
    live = await demo.client.post(
        "/checkout", json=body, headers={"authorization": f"Bearer {token}", "privacy-trace": officer(demo)}
    )
    assert live.status_code == 201
    expected = read_trace(live.headers["privacy-trace"])

    replayed = await replay(
        load_policy(demo_policy_path()),
        "POST /checkout",
        header_names=["Authorization", "Content-Type"],
        body_shape=body,
        response_shape=live.json(),
        status=201,
    )
    assert replayed["status"] == 201
    trace = replayed["trace"]
    assert trace["route"] == {**expected["route"], "parameters": expected["route"]["parameters"]}
    assert trace["steps"] == expected["steps"]
    assert trace["fields"] == expected["fields"]
    assert "4242" not in orjson.dumps(trace).decode()


def test_policy_trace_prints_the_trace_of_a_shape_never_its_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape = tmp_path / "checkout.json"
    shape.write_bytes(orjson.dumps({**checkout_body(), "note": "card 4242 4242 4242 4242"}))
    arguments = ["policy", "trace", str(demo_policy_path()), "--request", "POST /checkout"]
    code = cli(["--json", *arguments, "--header", "authorization", "--body", str(shape)])
    assert code == 0
    result = orjson.loads(capsys.readouterr().out)
    # the note is replayed as a placeholder ("x"): the values that made a live request fail never
    # travel, so this shape passes every step; the trace names each step and field all the same
    assert result["status"] == 204  # the stand-in shop answers no body: no response shape given
    steps = result["trace"]["steps"]
    assert [s["step"] for s in steps][:2] == ["containment", "request_shape"]
    assert {"step": "free_text", "hook": "on_request", "decision": "passed"}.items() <= next(
        s for s in steps if s["step"] == "free_text"
    ).items()
    assert "4242" not in orjson.dumps(result).decode()
