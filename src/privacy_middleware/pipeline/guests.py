"""Guest checkout: a caller without an account becomes the guest subject of their e-mail address
for this request (so their data is encrypted under that subject's key), and the shop's order
capability in the checkout response (a body field, or the order-status link its redirect
`Location` names) is bound to that subject."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from ..asgi.headers import get_header
from ..guests.service import GuestService
from ..policy.compile import RouteSpec, RouteTable
from ..policy.schema import GuestCheckout
from ..policy.selectors import compile_selector
from ..store.record_owners import RecordOwners
from .plan import Exchange, Step, StepFactory

if TYPE_CHECKING:
    from ..services import Services


class GuestCheckoutStep(Step):
    needs_request_json = True
    peeks_response_json = True

    def __init__(
        self,
        checkout: GuestCheckout,
        service: GuestService,
        *,
        param: str,
        owners: RecordOwners | None = None,
        kind: str = "",
    ) -> None:
        self.service = service
        self.email = compile_selector(checkout.email)
        self.capability = compile_selector(checkout.capability) if checkout.capability else None
        self.location: RouteTable[bool] | None = (
            RouteTable([("GET", checkout.capability_location, True)]) if checkout.capability_location else None
        )
        self.param = param
        self.owners = owners
        self.kind = kind

    async def on_request(self, ex: Exchange) -> None:
        if ex.ctx.principal is not None or not ex.request_has_json:
            return
        email = next((v for v in self.email.values(ex.request_json) if isinstance(v, str)), None)
        if email is None:
            return  # no address: the field rules decide (a protected field needs a subject: 401)
        ex.ctx.principal = self.service.principal(await self.service.subject_for_email(email))

    async def on_response(self, ex: Exchange) -> None:
        principal = ex.ctx.principal
        if principal is None or principal.claims.get("guest") is not True or principal.subject is None:
            return
        if self.location is not None and (300 <= ex.status < 400 or ex.status == 201):
            await self._bind_location(ex, principal.subject)
        if self.capability is None or not 200 <= ex.status < 300 or not ex.response_has_json:
            return
        for value in self.capability.values(ex.response_json):
            if isinstance(value, str | int) and str(value):
                await self.service.bind(str(value), principal.subject)

    async def _bind_location(self, ex: Exchange, subject: str) -> None:
        """The shop sends the guest to the order's status page: its capability (and record key) are theirs."""
        raw = get_header(ex.response_headers, b"location")
        if self.location is None or not raw:
            return
        target = urlsplit(raw.decode("latin-1"))
        found = self.location.match("GET", target.path or "/")
        if found is None:
            return
        params = found[1]
        capability = params.get("capability")
        if capability is None and self.param:
            capability = next((v for k, v in parse_qsl(target.query) if k == self.param and v), None)
        if capability:
            await self.service.bind(capability, subject)
        record = params.get("record")
        if record and self.owners is not None:
            await self.owners.bind(self.kind, [record], subject)


def factory(services: Services) -> StepFactory:
    service: GuestService | None = services.guests

    def checkout(spec: RouteSpec) -> Step | None:
        if service is None or spec.guest_checkout is None:
            return None
        return GuestCheckoutStep(
            spec.guest_checkout,
            service,
            param=services.policy.guests.capability_param,
            owners=services.record_owners,
            kind=spec.response.kind if spec.response is not None else "",
        )

    return checkout
