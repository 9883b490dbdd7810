"""Platform webhooks (Starlette routes): verify the raw body, de-duplicate, hand on, answer fast.

`POST /webhooks/<platform>` for each configured receiver. Order of work, and why:
1. read the raw body with a size cap (the signature covers the exact bytes);
2. verify before parsing anything: a bad or missing signature is 401, audited through
   `on_rejected`, and nothing is queued;
3. claim the delivery ids durably; a duplicate is answered 200 and not queued again;
4. hand each subject request to `submit` (the subject-request queue) and answer 200. If `submit`
   fails the claim is released and the answer is 503, so the platform's retry gets through.
Platforms give a few seconds per delivery (Shopify: 5 s), so no request is processed inline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ..context import get_context
from ..errors import PrivacyError
from ..integrations.common import MalformedWebhook, RejectedWebhook, SubmitRequest, WebhookReceiver
from ..store import Database
from ..store.webhooks import claim_delivery, release_delivery
from .common import JSONResponse, problem_response

logger = logging.getLogger("privacy_middleware.webhooks")

DEFAULT_MAX_BODY = 1_048_576


async def _raw_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PrivacyError("payload_too_large", "The webhook body is too large.", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PrivacyError("payload_too_large", "The webhook body is too large.", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _client_ip(request: Request) -> str | None:
    ctx = get_context(request.scope)
    if ctx is not None:
        return ctx.client_ip
    return request.client.host if request.client else None


def webhook_routes(
    database: Database,
    submit: SubmitRequest,
    receivers: Sequence[WebhookReceiver],
    *,
    on_rejected: RejectedWebhook | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
) -> list[Route]:
    """One `POST /webhooks/<platform>` route per receiver (mount them under the privacy API)."""
    names = [r.platform for r in receivers]
    if len(set(names)) != len(names):
        raise ValueError(f"one receiver per platform, got {names}")

    def endpoint(receiver: WebhookReceiver) -> Route:
        async def handle(request: Request) -> Response:
            try:
                body = await _raw_body(request, max_body_bytes)
            except PrivacyError as error:
                return problem_response(error)
            except ClientDisconnect:
                return Response(status_code=400)
            headers = {k.lower(): v for k, v in request.headers.items()}
            reason = await receiver.verify(headers, body)
            if reason is not None:
                logger.warning("%s webhook rejected: %s", receiver.platform, reason)
                if on_rejected is not None:
                    try:
                        await on_rejected(receiver.platform, reason, _client_ip(request))
                    except Exception:
                        logger.exception("auditing a rejected %s webhook failed", receiver.platform)
                return problem_response(
                    PrivacyError("webhook_signature_invalid", "The webhook signature is missing or wrong.", 401)
                )
            try:
                delivery = receiver.interpret(headers, body)
            except MalformedWebhook as exc:
                return problem_response(PrivacyError("malformed_webhook", str(exc), 400))
            if delivery is None:
                return JSONResponse({"status": "ignored"})
            if not await claim_delivery(database, delivery.platform, delivery.delivery_ids, delivery.topic):
                return JSONResponse({"status": "duplicate"})
            try:
                for item in delivery.requests:
                    await submit(item.kind, item.subject, delivery.source, delivery.idempotency_key(item))
            except Exception as exc:
                logger.error("%s webhook could not be queued (%s)", receiver.platform, type(exc).__name__)
                await release_delivery(database, delivery.platform, delivery.delivery_ids)
                return problem_response(
                    PrivacyError("queue_unavailable", "The request could not be queued; retry later.", 503)
                )
            return JSONResponse({"status": "queued", "requests": len(delivery.requests)})

        return Route(f"/webhooks/{receiver.platform}", handle, methods=["POST"], name=f"webhook_{receiver.platform}")

    return [endpoint(r) for r in receivers]
