"""Who is asking, from where, and for what: the per-request facts every capability reads.

The middleware builds one `RequestContext` per request and puts it in `scope["privacy"]`, so the
privacy API and the shop (if it wants) can read the verified principal and the trusted client IP.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .pipeline.facts import RequestFacts
from .principal import Principal

__all__ = ["SCOPE_KEY", "Principal", "RequestContext", "current_scope", "get_context"]


@dataclass(slots=True)
class RequestContext:
    method: str
    path: str
    client_ip: str | None
    principal: Principal | None = None
    path_params: dict[str, str] = field(default_factory=dict)
    user_agent: str = ""
    # Facts learnt while the request runs (e.g. the consent decision), for later steps and the audit.
    facts: RequestFacts = field(default_factory=RequestFacts)

    @property
    def subject(self) -> str | None:
        return self.principal.subject if self.principal else None


SCOPE_KEY = "privacy"


def get_context(scope: dict[str, Any] | Any) -> RequestContext | None:
    """The context the middleware attached to this ASGI scope, if any."""
    ctx = scope.get(SCOPE_KEY)
    return ctx if isinstance(ctx, RequestContext) else None


# The ASGI scope of the request being served, visible to the shop's code it awaits (so that
# PrivacyTransport can apply the caller's consent to outbound calls made while serving it).
current_scope: ContextVar[Any] = ContextVar("privacy_current_scope", default=None)


def request_context() -> RequestContext | None:
    """The privacy context of the request being served, from the shop's own code (None outside one).

    It carries the verified principal and the trusted client IP once the middleware has planned the route.
    """
    scope = current_scope.get()
    return get_context(scope) if scope is not None else None
