"""The request path's bare metric updates (pipeline/meters.py) leave the registry exactly as the
public `inc` and `observe` calls would, bucket by bucket, and fall back to those calls where the
metric is not a bound child; a planned request and a tracking event are counted through them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.pipeline.meters import counter_inc, histogram_observe
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but the creation times (they differ between two registries)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def pair() -> tuple[CollectorRegistry, Any, Any, CollectorRegistry, Any, Any]:
    regs = []
    for _ in range(2):
        registry = CollectorRegistry()
        counter = Counter("t_events", "events", ["outcome"], registry=registry)
        histogram = Histogram("t_seconds", "seconds", buckets=BUCKETS, registry=registry)
        regs.append((registry, counter, histogram))
    return (*regs[0], *regs[1])


amounts = st.one_of(
    st.floats(min_value=-1, max_value=1, allow_nan=False),
    st.sampled_from([*BUCKETS, 0.0, math.inf, math.nan, 0.10000000000000002]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(amounts, st.sampled_from(["passed", "dropped"])), max_size=30))
def test_bare_updates_leave_the_samples_the_public_calls_leave(events: list[tuple[float, str]]) -> None:
    public, counter, histogram, bare, bare_counter, bare_histogram = pair()
    observe = histogram_observe(bare_histogram)
    assert observe != bare_histogram.observe  # the bare path was taken, not the fallback
    incs = {outcome: counter_inc(bare_counter.labels(outcome)) for outcome in ("passed", "dropped")}
    children = {outcome: counter.labels(outcome) for outcome in ("passed", "dropped")}  # bound alike
    for amount, outcome in events:
        histogram.observe(amount)
        children[outcome].inc()
        observe(amount)
        incs[outcome]()
    got, want = samples(bare), samples(public)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == value or (math.isnan(value) and math.isnan(got[key])), key


def test_a_parent_without_its_labels_keeps_the_public_call() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_events", "events", ["outcome"], registry=registry)
    histogram = Histogram("t_seconds", "seconds", ["route"], registry=registry)
    inc = counter_inc(counter)
    with pytest.raises(ValueError, match="missing label values"):
        inc()
    with pytest.raises(ValueError, match="missing label values"):
        histogram_observe(histogram)(0.1)


TRACKING_POLICY = {
    "policy": {"name": "t", "version": "1", "effective_date": "2026-01-01"},
    "categories": {"user.name": {}},
    "purposes": {"order_fulfilment": {"legal_basis": "contract"}},
    "routes": [
        {"method": "GET", "path": "/orders/{id}", "response": {"fields": [{"select": "name", "category": "user.name"}]}}
    ],
}


@pytest.mark.anyio
async def test_a_planned_request_is_counted_and_timed(tmp_path: Path) -> None:
    settings_ = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db", data_dir=tmp_path)
    runtime = Runtime(settings_, policy=validate_policy(TRACKING_POLICY))

    async def shop(scope: Any, receive: Any, send: Any) -> None:
        body = b'{"name":"Ada","id":"1"}'
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    app = PrivacyMiddleware(shop, runtime=runtime)
    await runtime.ensure_started()
    try:
        for _ in range(3):
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
                sent.append(message)

            scope = {"type": "http", "method": "GET", "path": "/orders/1", "headers": [], "query_string": b""}
            await app(scope, receive, send)
            assert sent[0]["status"] == 200
        got = samples(runtime.metrics.registry)
        assert got[("privacy_requests_total", (("outcome", "passed"), ("route", "GET /orders/{id}")))] == 3
        assert got[("privacy_plan_seconds_count", ())] == 3
        assert got[("privacy_plan_seconds_bucket", (("le", "+Inf"),))] == 3
    finally:
        await runtime.stop()


def test_counted_values_take_every_step_from_every_thread_and_other_amounts_too() -> None:
    """The request path's steps (`itertools.count`, no lock) and the public calls' amounts (under the
    value's lock) add up from several threads at once; a histogram's pending amounts fold in as read
    and every FOLD_AFTER amounts; binding the same children again keeps their counts."""
    import threading

    from privacy_middleware.pipeline.meters import FOLD_AFTER, CountedValue, SummedValue

    *_, bare, bare_counter, bare_histogram = pair()
    child = bare_counter.labels("passed")
    child.inc(2)  # before the value is replaced: kept
    inc = counter_inc(child)
    observe = histogram_observe(bare_histogram)
    assert isinstance(child._value, CountedValue) and isinstance(bare_histogram._sum, SummedValue)
    per_thread = FOLD_AFTER + 300

    def work() -> None:
        for i in range(per_thread):
            inc()
            observe(0.002)
            if i % 100 == 0:
                child.inc(0.5)  # the public call, beside the steps

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter_inc(child) == inc  # bound again: the same value, not a new one
    again = counter_inc(bare_counter.labels("passed"))
    again()
    histogram_observe(bare_histogram)(0.002)
    got = samples(bare)
    steps = 4 * per_thread + 1
    halves = 4 * len(range(0, per_thread, 100)) * 0.5
    assert got[("t_events_total", (("outcome", "passed"),))] == 2 + steps + halves
    assert got[("t_seconds_count", ())] == steps
    assert got[("t_seconds_bucket", (("le", "0.005"),))] == steps
    assert got[("t_seconds_bucket", (("le", "0.001"),))] == 0
    assert math.isclose(got[("t_seconds_sum", ())], steps * 0.002)
    assert len(bare_histogram._sum.pending) < FOLD_AFTER  # folded on the way, not only when read
    child._value.set(0)  # Counter.reset's call: from zero again, steps and all
    inc()
    assert samples(bare)[("t_events_total", (("outcome", "passed"),))] == 1
