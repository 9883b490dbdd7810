"""Every capability's route steps. Order matters: early refusals first, disclosure last.

A factory list per capability; `default_factories(runtime)` gives them in pipeline order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pipeline import StepFactory
from .consent import consent_factories
from .fields import field_factories
from .minimisation import minimisation_factories

if TYPE_CHECKING:
    from ..runtime import Runtime


def default_factories(runtime: Runtime) -> list[StepFactory]:
    return [*consent_factories(runtime), *minimisation_factories(runtime), *field_factories(runtime)]
