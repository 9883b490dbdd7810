"""Every capability's route steps. Order matters: early refusals first, disclosure last.

A factory list per capability; `default_factories(runtime)` gives them in pipeline order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pipeline import StepFactory
from .audit import audit_factories
from .consent import consent_factories
from .fields import field_factories
from .minimisation import minimisation_factories

if TYPE_CHECKING:
    from ..runtime import Runtime


def default_factories(runtime: Runtime) -> list[StepFactory]:
    audit = audit_factories(runtime)
    return [
        *audit[:2],  # login lockout and account events: before anything else
        *consent_factories(runtime),
        *minimisation_factories(runtime),
        *field_factories(runtime),
        *audit[2:],  # disclosures and refusals: after the field steps
    ]
