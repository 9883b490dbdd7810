"""Guests as callers: a guest session (after an e-mail code) or an order capability (the shop's
order token) presented on one of the policy's guest order routes: in a header, a query parameter,
or the path segment the route's template names `{capability}` (an order-status link)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from ..context import Principal
from ..guests.service import SESSION_PREFIX, GuestService
from ..policy.compile import RouteTable
from ..policy.schema import Guests
from .base import CallerRequest


class GuestProvider:
    name = "guest"

    def __init__(self, service: GuestService, guests: Guests) -> None:
        self.service = service
        self.param = guests.capability_param
        self.header = guests.capability_header.lower().encode()
        self.order_routes = frozenset((r.method, r.path) for r in guests.order_routes)
        self.in_path: RouteTable[bool] = RouteTable(
            (r.method, r.path, True) for r in guests.order_routes if "{capability}" in r.path
        )

    def _capability(self, request: CallerRequest) -> str | None:
        if self.in_path.size:
            found = self.in_path.match(str(request.scope.get("method", "")), str(request.scope.get("path", "")))
            if found is not None and found[1].get("capability"):
                return found[1]["capability"]
        if self.header:
            value = request.header(self.header)
            if value:
                return value.decode("latin-1").strip()
        if self.param:
            query = request.scope.get("query_string") or b""
            for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=False):
                if key == self.param and value:
                    return str(value)
        return None

    async def resolve(self, request: CallerRequest) -> Principal | None:
        token = request.bearer()
        if token and token.startswith(SESSION_PREFIX):
            subject = self.service.session_subject(token)
            return self.service.principal(subject) if subject else None
        if request.route is None or request.route not in self.order_routes:
            return None
        capability = self._capability(request)
        if capability is None or token:
            return None  # a signed-in caller is who their token says, not who a link says
        subject = await self.service.owner_of(capability)
        return self.service.principal(subject) if subject else None
