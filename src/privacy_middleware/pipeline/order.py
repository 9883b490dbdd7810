"""The named order of the route steps. Early refusals first, disclosure last, audit around them.

Each entry is (name, builder): the builder takes the built services once and returns a factory
that gives the step for a route (or None when the route does not need it). Adding a step is one
module and one line here, at the place in the order where it must run.
"""

from __future__ import annotations

from collections.abc import Callable

from ..services import Services
from . import (
    account,
    containment,
    disclose,
    disclosure_audit,
    forbidden,
    free_text,
    guests,
    login,
    minimum_age,
    protect,
    records,
    refusal_audit,
    shapes,
    tracking,
)
from .plan import StepFactory
from .report import governed

StepBuilder = Callable[[Services], StepFactory]

STEP_ORDER: tuple[tuple[str, StepBuilder], ...] = (
    ("containment", containment.factory),  # a suspended caller (breach response) gets nothing
    ("login", login.factory),  # lockout before anything else
    ("account", account.factory),
    ("tracking", tracking.factory),  # consent: drop tracking events early
    ("request_shape", shapes.factory),  # a body the policy cannot read exactly: refused before any rule
    ("minimum_age", minimum_age.factory),
    ("forbidden_category", forbidden.factory),
    ("free_text", free_text.factory),
    ("guest_checkout", guests.factory),  # a guest's subject, before their fields are protected
    ("protect_request", protect.factory),
    ("bind_records", records.factory),  # the record the shop created, bound to whom it was sealed for
    ("disclose_response", disclose.factory),
    ("disclosure_audit", disclosure_audit.factory),  # after the disclosure it records
    ("refusal_audit", refusal_audit.factory),
)


def step_factories(services: Services) -> list[StepFactory]:
    """Every step's factory, in pipeline order."""
    return [governed(name, build(services), services) for name, build in STEP_ORDER]
