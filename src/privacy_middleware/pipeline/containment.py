"""A suspended principal or recipient (breach containment) is refused before anything else runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..breach.containment import Suspensions, suspended_error
from ..policy.compile import RouteSpec
from .plan import Exchange, Step, StepFactory

if TYPE_CHECKING:
    from ..services import Services


class ContainmentGate(Step):
    def __init__(self, suspensions: Suspensions) -> None:
        self.suspensions = suspensions

    async def before(self, ex: Exchange) -> None:
        if self.suspensions.blocks(ex.ctx.principal):
            raise suspended_error()


def factory(services: Services) -> StepFactory:
    gate = ContainmentGate(services.breach.suspensions)

    def build(spec: RouteSpec) -> Step | None:
        # routes that carry personal data in or out; others are not the suspended caller's concern
        return gate if spec.route is not None and (spec.response or spec.request) else None

    return build
