"""The shape step: a request body the policy cannot read exactly is refused before any field rule.

Runs first on every route with protected request fields (fields/shape_guard.py says what it
checks), and removes card security codes from any object that holds a card.
"""

from __future__ import annotations

from ..fields.shape_guard import ShapeGuard, remove_card_codes
from ..policy.compile import RouteSpec
from ..services import Services
from .plan import Exchange, Step, StepFactory


class GuardRequestShape(Step):
    needs_request_json = True
    declared_paths_only = True

    def __init__(self, guard: ShapeGuard) -> None:
        self.guard = guard

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        self.guard.check(ex.request_json)
        if remove_card_codes(ex.request_json):
            ex.request_changed = True


def factory(services: Services) -> StepFactory:
    def guard(spec: RouteSpec) -> Step | None:
        return GuardRequestShape(ShapeGuard(spec.request)) if spec.request else None

    return guard
