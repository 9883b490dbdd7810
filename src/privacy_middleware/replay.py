"""`policy trace`: replay a recorded request shape, without its values, and get its decision trace.

The replay is the real thing, in-process: the request goes through `PrivacyMiddleware` with a
`Privacy-Trace` header, so what comes back is the trace the header carries on a live request
(`pipeline/trace.py`, its field views from `policy/explain.py`), not a second account of it. What
differs is only where the request comes from: the store, the keys and the tokens are throwaway
(a temporary directory, a random JWT secret), the shop is a stand-in that answers the response
shape, and every value is a placeholder: strings become `"x"` (or a valid sample where the policy
validates the field), numbers `1`. The trace carries no value, as on a live request.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson

from .middleware import PrivacyMiddleware
from .pipeline.trace import TRACE_HEADER, read_trace
from .policy.compile import CompiledBody
from .policy.explain import find_spec
from .policy.schema import Policy
from .runtime import Runtime
from .settings import Settings
from .types import Receive, Scope, Send

# A value each validator accepts (the replay must reach the step that decides, not stop at a format).
SAMPLES = {
    "card_number": "4242424242424242",
    "email": "replay@example.invalid",
    "phone": "+44 1632 960000",
    "iso_date": "1990-01-01",
}
# Placeholders for the headers a recorded request named (anything else: "x").
HEADER_PLACEHOLDERS = {"content-type": "application/json", "sec-gpc": "1", "accept": "application/json"}
SUBJECT = "replay-subject"


def placeholders(shape: Any) -> Any:
    """The shape with every leaf replaced: strings "x", numbers 1, booleans and nulls as they are."""
    if isinstance(shape, dict):
        return {key: placeholders(value) for key, value in shape.items()}
    if isinstance(shape, list):
        return [placeholders(value) for value in shape]
    if isinstance(shape, bool) or shape is None:
        return shape
    if isinstance(shape, int | float):
        return 1
    return "x"


def fill_validated(body: CompiledBody | None, document: Any) -> None:
    """Give fields the policy validates a valid sample, so the replay meets the same steps."""
    if body is None:
        return
    for record in body.records.values(document):
        for field in body.fields:
            sample = SAMPLES.get(field.rule.validate_as or "")
            if sample is None:
                continue
            for location in list(field.selector.locations(record)):
                if isinstance(location.get(), str):
                    location.set(sample)


def _token(secret: str, claims: Mapping[str, Any]) -> str:
    now = int(time.time())
    return jwt.encode({**claims, "iat": now, "exp": now + 300}, secret, algorithm="HS256")


def _stand_in(status: int, response: Any) -> Any:
    """The shop: answers every request with the response shape's placeholders (or 204)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            return
        while (await receive()).get("more_body"):
            pass
        body = b"" if response is None else orjson.dumps(response)
        headers = [(b"content-type", b"application/json")] if response is not None else []
        await send({"type": "http.response.start", "status": status if body else 204, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def replay(
    policy: Policy,
    route: str,
    *,
    header_names: list[str] | None = None,
    body_shape: Any = None,
    response_shape: Any = None,
    recipient: str | None = None,
    purpose: str | None = None,
    status: int = 200,
) -> dict[str, Any]:
    """Send 'METHOD /path' with placeholder values through the middleware; return its trace.

    `recipient` None: the caller is a signed-in customer (with `authorization` among the header
    names) or anonymous. Returns {"status", "trace"}; "trace" is None when no plan matched (the
    request goes to the shop untouched).
    """
    method, _, path = route.strip().partition(" ")
    method, path = method.upper(), path.strip()
    secret = secrets.token_urlsafe(32)
    identity = policy.identity
    names = [n.strip().lower() for n in header_names or [] if n.strip()]
    try:
        spec = find_spec(policy, route)
    except KeyError:
        spec = None
    request_json = placeholders(body_shape) if body_shape is not None else None
    response_json = placeholders(response_shape) if response_shape is not None else None
    if spec is not None:
        fill_validated(spec.request, request_json)
        fill_validated(spec.response, response_json)
    headers: dict[str, str] = {n: HEADER_PLACEHOLDERS.get(n, "x") for n in names if n not in ("host", "content-length")}
    if recipient is not None or "authorization" in names:
        claims: dict[str, Any] = {identity.subject_claim: SUBJECT}
        if recipient is not None and recipient != identity.customer_recipient:
            claims = {identity.subject_claim: f"replay-{recipient}", identity.recipient_claim: recipient}
        if purpose:
            claims[identity.purpose_claim] = purpose
        headers["authorization"] = f"Bearer {_token(secret, claims)}"
    if request_json is not None:
        headers.setdefault("content-type", "application/json")  # a JSON shape was a JSON body
    headers.pop("cookie", None)  # a placeholder cookie would only be an unreadable consent cookie
    officer = _token(secret, {"sub": "replay-officer", identity.scope_claim: policy.audit.admin_scope})
    headers[TRACE_HEADER.decode()] = officer
    package_log = logging.getLogger("privacy_middleware")
    level = package_log.level
    with tempfile.TemporaryDirectory(prefix="privacy-replay-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'replay.db'}",
            env="development",
            redis_url=None,
            shop_adapter=None,
            jwt={"secret": secret, "algorithms": ["HS256"]},
        )
        package_log.setLevel(logging.ERROR)  # the throwaway keys' "created a development key" notes
        runtime: Runtime | None = None
        try:
            runtime = Runtime(settings, policy=policy)
            app = PrivacyMiddleware(_stand_in(status, response_json), runtime=runtime)
            transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://replay.invalid") as client:
                content = orjson.dumps(request_json) if request_json is not None else None
                answer = await client.request(method, path, headers=headers, content=content)
        finally:
            if runtime is not None:
                await runtime.stop()
            package_log.setLevel(level)
    value = answer.headers.get(TRACE_HEADER.decode())
    return {"status": answer.status_code, "trace": read_trace(value) if value else None}


def replay_sync(policy: Policy, route: str, **options: Any) -> dict[str, Any]:
    return asyncio.run(replay(policy, route, **options))
