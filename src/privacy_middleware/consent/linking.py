"""After a sign-in, the visitor's consent choices (their signed consent cookie) move to the account."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .service import ConsentService, StoreUnavailable
from .signals import request_signals

logger = logging.getLogger("privacy_middleware")


async def link_visitor_consent(consent: ConsentService, headers: Sequence[tuple[bytes, bytes]], subject: str) -> None:
    """Link the visitor named by the request's consent cookie to `subject`; a failure only logs."""
    signals = request_signals(headers)
    verified = consent.verify_cookie(signals.consent_cookie)
    if verified is None or verified.holder.kind != "visitor":
        return
    try:
        await consent.link_visitor(verified.holder.id, subject)
    except (StoreUnavailable, ValueError) as exc:
        logger.warning("visitor consent not linked at sign-in: %s", type(exc).__name__)
