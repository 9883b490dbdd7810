"""The inbound minimisation guard: forbidden categories, free-text detectors, minimum age.

Refusals name the field and the kind of data, never the value. What was refused is noted on the
request context so the audit step can record the attempt (without the data).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ..errors import PrivacyError
from ..fields.detectors import detect, redact
from ..fields.selectors import Selector
from ..pipeline import Exchange, Step, StepFactory
from ..policy.compile import CompiledFreeText, RouteSpec

if TYPE_CHECKING:
    from ..runtime import Runtime


class FreeTextGuard(Step):
    """Catch card numbers, ID numbers, SSNs and IBANs pasted into free text."""

    needs_request_json = True

    def __init__(self, rules: tuple[CompiledFreeText, ...], runtime: Runtime) -> None:
        self.rules = rules
        self.runtime = runtime

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        for compiled in self.rules:
            rule = compiled.rule
            for location in list(compiled.selector.locations(ex.request_json)):
                value = location.get()
                if not isinstance(value, str):
                    continue
                findings = detect(value, rule.detect)
                if not findings:
                    continue
                kinds = sorted({f.kind for f in findings})
                ex.ctx.notes.setdefault("minimisation", []).append(
                    {"field": rule.select, "kinds": kinds, "action": rule.action}
                )
                self.runtime.metrics.refusals.labels(f"detected_{kinds[0]}").inc()
                if rule.action == "reject":
                    raise PrivacyError(
                        "forbidden_data_detected",
                        f"The field {rule.select!r} contains data that must not be sent here "
                        f"({', '.join(kinds)}). Remove it and try again.",
                        422,
                        extra={"field": rule.select, "kinds": kinds},
                    )
                location.set(redact(value, findings))
                ex.request_changed = True


class ForbiddenCategoryGuard(Step):
    """Refuse request fields whose category the policy forbids collecting at all."""

    needs_request_json = True

    def __init__(self, fields: list[tuple[str, str, Selector]]) -> None:
        self.fields = fields  # (select, category, selector)

    async def on_request(self, ex: Exchange) -> None:
        if not ex.request_has_json:
            return
        for select, category, selector in self.fields:
            if any(v not in (None, "") for v in selector.values(ex.request_json)):
                ex.ctx.notes.setdefault("minimisation", []).append(
                    {"field": select, "kinds": [category], "action": "reject"}
                )
                raise PrivacyError(
                    "forbidden_category",
                    f"The field {select!r} holds {category} data, which this shop does not collect.",
                    422,
                    extra={"field": select, "category": category},
                )


def age_on(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class MinimumAgeGuard(Step):
    """Refuse a registration below the policy's minimum age; nothing is forwarded."""

    needs_request_json = True

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
            ex.ctx.notes["underage"] = True
            raise PrivacyError(
                "below_minimum_age",
                f"Customers must be at least {self.minimum_age} years old to register.",
                403,
                extra={"minimum_age": self.minimum_age},
            )


def minimisation_factories(runtime: Runtime) -> list[StepFactory]:
    policy = runtime.policy
    forbidden = {name for name, category in policy.categories.items() if category.forbidden}

    def free_text(spec: RouteSpec) -> Step | None:
        return FreeTextGuard(spec.free_text, runtime) if spec.free_text else None

    def forbidden_fields(spec: RouteSpec) -> Step | None:
        if spec.request is None or not forbidden:
            return None
        fields = [
            (f.rule.select, f.rule.category, f.selector)
            for f in spec.request.fields
            if f.rule.category in forbidden or any(f.rule.category.startswith(c + ".") for c in forbidden)
        ]
        return ForbiddenCategoryGuard(fields) if fields else None

    def minors(spec: RouteSpec) -> Step | None:
        if spec.minors is None or spec.minors_birth_date is None:
            return None
        return MinimumAgeGuard(spec.minors_birth_date, spec.minors.birth_date, policy.minors.minimum_age)

    return [minors, forbidden_fields, free_text]
