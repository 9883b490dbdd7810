"""Consent and consent-gated tracking: records, signals (GPC, TCF, Consent Mode), cookie, decisions."""

from ..store.consent_records import ConsentRecord, ConsentState, Holder, InvalidHolder, user_agent_family
from .consent_mode import consent_mode, consent_mode_header
from .cookie import COOKIE_NAME, ConsentCookieCodec, CookieConsent
from .cookie_filter import expiring_set_cookies, filter_set_cookies
from .decisions import Decision, PurposeDecision, Signals, decide, decide_purpose, needs_choice
from .receipts import ReceiptSigner, verify_receipt
from .signals import RequestSignals, gpc_enabled, parse_cookie_header, request_signals
from .tcf import TCFError, TCFRules, TCString, decode_tc_string, parse_tc_string, validate_tc_string

__all__ = [
    "COOKIE_NAME",
    "ChangeResult",
    "ConsentCookieCodec",
    "ConsentRecord",
    "ConsentService",
    "ConsentState",
    "CookieConsent",
    "Decision",
    "Holder",
    "InvalidHolder",
    "PurposeDecision",
    "ReceiptSigner",
    "RequestSignals",
    "Resolution",
    "Signals",
    "StoreUnavailable",
    "TCFError",
    "TCFRules",
    "TCString",
    "consent_mode",
    "consent_mode_header",
    "decide",
    "decide_purpose",
    "decode_tc_string",
    "expiring_set_cookies",
    "filter_set_cookies",
    "gpc_enabled",
    "needs_choice",
    "new_visitor_id",
    "parse_cookie_header",
    "parse_tc_string",
    "request_signals",
    "user_agent_family",
    "validate_tc_string",
    "verify_receipt",
]


_SERVICE_NAMES = {"ChangeResult", "ConsentService", "Resolution", "StoreUnavailable", "new_visitor_id"}


def __getattr__(name: str) -> object:
    # The service imports the store, whose consent tables import `records` from this package:
    # loading it lazily keeps `store.consent` importable on its own (migrations import it first).
    if name in _SERVICE_NAMES:
        from . import service

        return getattr(service, name)
    raise AttributeError(name)
