"""Deadlines: calendar days, or working days that never count a weekend."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.policy.schema import Rights
from privacy_middleware.rights.deadlines import add_working_days, due_date

starts = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 1, 1), timezones=st.just(dt.UTC))


def test_ten_working_days_from_a_friday_is_two_weeks_later() -> None:
    friday = dt.datetime(2026, 11, 20, 17, 30, tzinfo=dt.UTC)
    assert add_working_days(friday, 10) == dt.datetime(2026, 12, 4, 17, 30, tzinfo=dt.UTC)
    saturday = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
    assert add_working_days(saturday, 1) == dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def test_policy_chooses_calendar_or_working_days() -> None:
    start = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    assert due_date(start, Rights(deadline_days=30)) == start + dt.timedelta(days=30)
    assert due_date(start, Rights(deadline_days=10, working_days=True)) == start + dt.timedelta(days=14)


@given(starts, st.integers(min_value=1, max_value=60))
def test_working_day_deadlines_count_exactly_n_weekdays_and_end_on_one(start: dt.datetime, days: int) -> None:
    due = add_working_days(start, days)
    assert due.weekday() < 5
    assert due.time() == start.time()
    counted = sum(1 for offset in range(1, (due - start).days + 1) if (start + dt.timedelta(days=offset)).weekday() < 5)
    assert counted == days
    assert due - start <= dt.timedelta(days=days + 2 * (days // 5 + 1) + 2)
