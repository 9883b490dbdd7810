"""Sending a problem+json answer from pure ASGI."""

from __future__ import annotations

from ..errors import PrivacyError, problem_body, problem_headers
from ..types import Send


async def send_problem(send: Send, error: PrivacyError, *, head: bool = False) -> None:
    body = problem_body(error)
    await send({"type": "http.response.start", "status": error.status, "headers": problem_headers(error, body)})
    await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})
