"""A consented tracking event on the demo policy: the shop gets its ids pseudonymised and its IP
truncated, and what the shop answers still leaves with its card numbers masked and the Consent Mode
hint added (the route has no response plan; the guard is the C one where it is built)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.netaddr import truncate_ip
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings
from privacy_middleware.store.consent_records import Holder

pytestmark = pytest.mark.anyio

PAN = "4242424242424242"
EVENT = {"event": "page_view", "visitor_id": "v-12345", "customer_id": "cus_0001", "ip": "203.0.113.77"}


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        policy_file=demo_policy_path(),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        consent={"secure_cookie": False},
    )
    runtime = Runtime(settings)
    await runtime.ensure_started()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def _post(runtime: Runtime, answer: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    change = await runtime.consent.set_purposes(Holder("visitor", "vtest0000000000000000"), {"analytics": True})
    seen: dict[str, Any] = {}

    async def shop(scope: Any, receive: Any, send: Any) -> None:
        seen["body"] = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    body = orjson.dumps(EVENT)
    cookie = f"{runtime.consent.cookies.cookie_name}={change.cookie}".encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/track",
        "query_string": b"",
        "client": ("198.51.100.23", 5000),
        "headers": [(b"cookie", cookie), (b"content-type", b"application/json")],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await PrivacyMiddleware(shop, runtime=runtime)(scope, receive, send)
    start = sent[0]
    return {
        "status": start["status"],
        "headers": dict(start["headers"]),
        "body": b"".join(m.get("body", b"") for m in sent[1:]),
        "forwarded": orjson.loads(seen["body"]),
    }


async def test_a_consented_event_is_forwarded_pseudonymised_and_its_answer_is_checked(runtime: Runtime) -> None:
    answer = orjson.dumps({"accepted": True, "memo": f"card {PAN}"})
    got = await _post(runtime, answer, [(b"content-type", b"application/json")])
    assert got["status"] == 200
    assert PAN not in got["body"].decode() and PAN[-4:] in got["body"].decode()
    assert b"consent-mode" in got["headers"]
    plan = runtime.plans.match("POST", "/track")
    assert plan is not None
    gate: Any = plan[0].befores[0]
    pseudonym = runtime.fields.pseudonymiser.pseudonym
    assert got["forwarded"] == {
        "event": "page_view",
        "visitor_id": pseudonym("v-12345", gate.pseudonym_scope),
        "customer_id": pseudonym("cus_0001", gate.pseudonym_scope),
        "ip": truncate_ip("203.0.113.77"),
    }


async def test_a_compressed_answer_is_decoded_to_check_and_keeps_the_consent_hint(runtime: Runtime) -> None:
    answer = gzip.compress(orjson.dumps({"memo": f"card {PAN}"}))
    headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
    got = await _post(runtime, answer, headers)
    assert got["status"] == 200 and b"consent-mode" in got["headers"]
    text = (
        gzip.decompress(got["body"]) if got["headers"].get(b"content-encoding") == b"gzip" else got["body"]
    ).decode()
    assert PAN not in text and PAN[-4:] in text
