"""Sending mail through the configured SMTP server (aiosmtplib). A failure is 503, never silent."""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib

from ..errors import PrivacyError
from ..netguard import OutboundGuard
from ..outbound import connect_socket
from ..settings import SmtpSettings

logger = logging.getLogger("privacy_middleware.guests")


async def send_mail(smtp: SmtpSettings, message: EmailMessage, guard: OutboundGuard) -> None:
    """Send through the configured server, connected only to an address `guard` allows."""
    if not smtp.host:
        raise PrivacyError("mail_not_configured", "Codes cannot be sent: no mail server is configured.", 503)
    try:
        sock = await connect_socket(guard, smtp.host, smtp.port, smtp.timeout_seconds)
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            sock=sock,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            start_tls=smtp.starttls,
            use_tls=smtp.tls,
            timeout=smtp.timeout_seconds,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        logger.warning("sending a guest code failed: %s", type(exc).__name__)
        raise PrivacyError("mail_unavailable", "The code could not be sent right now; try again.", 503) from None
