"""Guest checkout: a caller without an account becomes the guest subject of their e-mail address
for this request (so their data is encrypted under that subject's key), and the shop's order
capability in the checkout response is bound to that subject."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fields.selectors import compile_selector
from ..guests.service import GuestService
from ..policy.compile import RouteSpec
from ..policy.schema import GuestCheckout
from .plan import Exchange, Step, StepFactory

if TYPE_CHECKING:
    from ..services import Services


class GuestCheckoutStep(Step):
    needs_request_json = True
    peeks_response_json = True

    def __init__(self, checkout: GuestCheckout, service: GuestService) -> None:
        self.service = service
        self.email = compile_selector(checkout.email)
        self.capability = compile_selector(checkout.capability) if checkout.capability else None

    async def on_request(self, ex: Exchange) -> None:
        if ex.ctx.principal is not None or not ex.request_has_json:
            return
        email = next((v for v in self.email.values(ex.request_json) if isinstance(v, str)), None)
        if email is None:
            return  # no address: the field rules decide (a protected field needs a subject: 401)
        ex.ctx.principal = self.service.principal(await self.service.subject_for_email(email))

    async def on_response(self, ex: Exchange) -> None:
        principal = ex.ctx.principal
        if self.capability is None or principal is None or principal.claims.get("guest") is not True:
            return
        if not 200 <= ex.status < 300 or not ex.response_has_json or principal.subject is None:
            return
        for value in self.capability.values(ex.response_json):
            if isinstance(value, str | int) and str(value):
                await self.service.bind(str(value), principal.subject)


def factory(services: Services) -> StepFactory:
    service: GuestService | None = services.guests

    def checkout(spec: RouteSpec) -> Step | None:
        if service is None or spec.guest_checkout is None:
            return None
        return GuestCheckoutStep(spec.guest_checkout, service)

    return checkout
