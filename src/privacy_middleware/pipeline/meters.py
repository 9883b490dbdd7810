"""Prometheus updates on the request path without the client library's per-call checks.

`Counter.inc` checks on every call that the child is bound to its labels and whether an exemplar
came with the amount; `Histogram.observe` checks the same and then walks its buckets in Python. The
request path updates children bound once (at plan build or on a route's first request) and never
passes an exemplar, so those checks are settled before the first request: what is left is the
value's own update under its lock, which is what the public call ends in. The bucket is found by
bisection over the same upper bounds (the first bound at or above the amount, as the public loop).
Where the installed client lacks the attributes read here, the public calls are used.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from functools import partial
from typing import Any


def counter_inc(child: Any) -> Callable[[], None]:
    """`child.inc()` for a counter child bound to its labels (or a counter without labels)."""
    value = getattr(child, "_value", None)
    inc = getattr(value, "inc", None)
    if inc is None or not _observable(child):
        return child.inc  # type: ignore[no-any-return]
    return partial(inc, 1)


def counter_add(child: Any) -> Callable[[float], None]:
    """`child.inc(amount)` for a counter child bound to its labels, for amounts known not to be negative
    (the public call's one other check)."""
    value = getattr(child, "_value", None)
    inc = getattr(value, "inc", None)
    if inc is None or not _observable(child):
        return child.inc  # type: ignore[no-any-return]
    return inc  # type: ignore[no-any-return]


def histogram_observe(histogram: Any) -> Callable[[float], None]:
    """`histogram.observe` for a histogram bound to its labels (or one without labels)."""
    total: Any = getattr(histogram, "_sum", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    if (
        not _observable(histogram)
        or getattr(total, "inc", None) is None
        or not isinstance(bounds, list | tuple)
        or not isinstance(buckets, list | tuple)
        or len(bounds) != len(buckets)
        or not bounds
        or bounds[-1] != float("inf")
        or any(getattr(bucket, "inc", None) is None for bucket in buckets)
    ):
        return histogram.observe  # type: ignore[no-any-return]
    add = total.inc
    counts = tuple(bucket.inc for bucket in buckets)
    upper = tuple(bounds)

    def observe(amount: float) -> None:
        add(amount)
        if amount == amount:  # NaN reaches no bucket (no bound compares true), as in the public loop
            counts[bisect_left(upper, amount)](1)

    return observe


def _observable(metric: Any) -> bool:
    """What `MetricWrapperBase._is_observable` asks: no labels, or bound to their values."""
    names = getattr(metric, "_labelnames", None)
    return names is not None and (not names or bool(getattr(metric, "_labelvalues", None)))
