"""When a subject's request must be answered: the policy's deadline in calendar or working days."""

from __future__ import annotations

import datetime as dt

from ..policy.schema import Rights


def add_working_days(start: dt.datetime, days: int) -> dt.datetime:
    """`days` working days (Monday to Friday) after `start`, at the same time of day.

    A request received on a weekend starts counting on the next working day, like a request handed
    in on Friday evening. Public holidays differ by country and are not modelled: the deadline may
    fall a day early, never late.
    """
    current = start
    remaining = days
    while remaining > 0:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def due_date(received: dt.datetime, rights: Rights) -> dt.datetime:
    if rights.working_days:
        return add_working_days(received, rights.deadline_days)
    return received + dt.timedelta(days=rights.deadline_days)
