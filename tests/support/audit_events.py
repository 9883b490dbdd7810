"""Audit events the store tests append: logins with every sealed kind (username, IP, user agent)."""

from __future__ import annotations

from privacy_middleware.audit import AuditEvent, login_attempt


def sealed_login(n: int) -> AuditEvent:
    """Login attempt number n: every other one failed, each with all three sealed values."""
    return login_attempt(
        success=n % 2 == 0,
        subject=f"cust_{n}",
        username=f"user{n}@example.org",
        ip=f"198.51.100.{n % 250}",
        user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        device=f"dev-{n}",
    )
