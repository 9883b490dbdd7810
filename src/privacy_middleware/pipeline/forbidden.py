"""Forbidden categories: request fields of a category the policy says the shop never collects."""

from __future__ import annotations

from ..errors import PrivacyError
from ..policy.compile import RouteSpec
from ..policy.selectors import Selector
from ..services import Services
from .facts import Refusal
from .plan import Exchange, Step, StepFactory


class ForbiddenCategoryGuard(Step):
    """Refuse request fields whose category the policy forbids collecting at all."""

    needs_request_json = True
    declared_paths_only = True

    def __init__(self, fields: list[tuple[str, str, Selector]]) -> None:
        self.fields = fields  # (select, category, selector)

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        for select, category, selector in self.fields:
            if any(v not in (None, "") for v in selector.values(ex.request_json)):
                ex.ctx.facts.refusals.append(Refusal(select, (category,), "reject"))
                raise PrivacyError(
                    "forbidden_category",
                    f"The field {select!r} holds {category} data, which this shop does not collect.",
                    422,
                    extra={"field": select, "category": category},
                )


def factory(services: Services) -> StepFactory:
    policy = services.policy
    forbidden = {name for name, category in policy.categories.items() if category.forbidden}

    def forbidden_fields(spec: RouteSpec) -> Step | None:
        if spec.request is None or not forbidden:
            return None
        fields = [
            (f.rule.select, f.rule.category, f.selector)
            for f in spec.request.fields
            if f.rule.category in forbidden or any(f.rule.category.startswith(c + ".") for c in forbidden)
        ]
        return ForbiddenCategoryGuard(fields) if fields else None

    return forbidden_fields
