"""Minimum age: a registration below the policy's minimum age is refused; nothing is forwarded."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..errors import PrivacyError
from ..policy.compile import RouteSpec
from ..policy.selectors import Selector
from ..services import Services
from .plan import Exchange, Step, StepFactory


def age_on(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class MinimumAgeGuard(Step):
    """Refuse a registration below the policy's minimum age; nothing is forwarded."""

    needs_request_json = True
    declared_paths_only = True

    def __init__(self, selector: Selector, field: str, minimum_age: int) -> None:
        self.selector = selector
        self.field = field
        self.minimum_age = minimum_age

    async def on_request(self, ex: Exchange) -> None:
        value: Any = next(iter(self.selector.values(ex.request_json)), None) if ex.request_has_json else None
        if not isinstance(value, str):
            raise PrivacyError(
                "birth_date_required",
                f"The field {self.field!r} (YYYY-MM-DD) is required here.",
                422,
                extra={"field": self.field},
            )
        try:
            birth = dt.date.fromisoformat(value[:10])
        except ValueError:
            raise PrivacyError(
                "invalid_date",
                f"The field {self.field!r} is not a YYYY-MM-DD date.",
                422,
                extra={"field": self.field},
            ) from None
        today = dt.datetime.now(dt.UTC).date()
        if birth > today or age_on(birth, today) < self.minimum_age:
            ex.ctx.facts.underage = True
            raise PrivacyError(
                "below_minimum_age",
                f"Customers must be at least {self.minimum_age} years old to register.",
                403,
                extra={"minimum_age": self.minimum_age},
            )


def factory(services: Services) -> StepFactory:
    minimum_age = services.policy.minors.minimum_age

    def minors(spec: RouteSpec) -> Step | None:
        if spec.minors is None or spec.minors_birth_date is None:
            return None
        return MinimumAgeGuard(spec.minors_birth_date, spec.minors.birth_date, minimum_age)

    return minors
