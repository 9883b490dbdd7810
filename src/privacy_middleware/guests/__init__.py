"""Guests: customers without an account keep their protection and their rights (docs/guests.md)."""

from __future__ import annotations

from .service import GUEST_PREFIX, GuestService

__all__ = ["GUEST_PREFIX", "GuestService"]
