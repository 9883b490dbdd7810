"""The request's consent decision, computed once and kept in the request's facts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..consent.consent_mode import consent_mode, consent_mode_header
from ..consent.service import Resolution
from ..consent.signals import request_signals
from ..context import RequestContext
from ..types import Scope

if TYPE_CHECKING:
    from ..runtime import Runtime


async def resolve_consent(runtime: Runtime, scope: Scope, ctx: RequestContext | None) -> Resolution:
    """The request's consent decision, computed once per request."""
    if ctx is not None and ctx.facts.consent is not None:
        return ctx.facts.consent
    signals = request_signals(scope.get("headers") or [], scope.get("query_string", b""))
    subject = ctx.subject if ctx is not None else None
    objected, restricted = (await runtime.subject_flags(subject)) if subject else (frozenset(), False)
    resolution = await runtime.consent.resolve(
        subject=subject,
        consent_cookie=signals.consent_cookie,
        gpc=signals.gpc,
        tc_string=signals.tc_string,
        objected=objected,
        restricted=restricted,
    )
    if ctx is not None:
        ctx.facts.consent = resolution
    return resolution


def consent_headers(runtime: Runtime, resolution: Resolution) -> list[tuple[bytes, bytes]]:
    headers = [(b"consent-mode", consent_mode_header(consent_mode(runtime.policy, resolution.decision)).encode())]
    if resolution.decision.reconsent_required:
        headers.append((b"privacy-reconsent", b"required"))
    return headers
