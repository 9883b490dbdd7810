"""Bulk-access detection on event documents of both shapes (one per subject, one per disclosure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from privacy_middleware.audit.events import data_access, to_micros
from privacy_middleware.breach.detectors import BulkDetector
from privacy_middleware.breach.facts import access_from
from privacy_middleware.breach.findings import Deduplicator
from privacy_middleware.policy.schema import Breach

MONDAY_NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def doc(
    subjects: list[str],
    *,
    principal: str = "logistics-co",
    recipient: str | None = "logistics",
    categories: tuple[str, ...] = ("user.contact.address.delivery.street",),
    when: datetime = MONDAY_NOON,
    network: str = "198.51.100.7",
    action: str = "disclose",
    grouped: bool = False,
) -> dict[str, Any]:
    """An event document as the trail stores it; `grouped` is the one-event-per-disclosure shape."""
    event = data_access(
        principal=principal,
        subject=subjects[0],
        categories=categories,
        purpose="delivery",
        route="GET /orders/{order_id}",
        recipient=recipient,
        action=action,
        ip=network,
        time=when,
        record_count=len(subjects) if grouped else 1,
    )
    document = event.document()
    document["time_us"] = to_micros(event.time)
    if grouped:
        document["subject"] = None
        document["detail"]["subjects"] = subjects
    return document


def run(detector: BulkDetector, documents: list[dict[str, Any]]) -> list[str]:
    names = []
    for document in documents:
        access = access_from(document)
        assert access is not None
        names += [f.name for f in detector.observe(access)]
    return names


def test_volume_spike_fires_once_per_window_in_both_event_shapes() -> None:
    rules = Breach(subjects_per_window=10)
    per_subject = [doc([f"cus_{i:x}abc"]) for i in range(25)]
    assert run(BulkDetector(rules, frozenset()), per_subject) == ["bulk_volume"]
    grouped = [doc([f"cus_{i:x}abc" for i in range(25)], grouped=True)]
    assert run(BulkDetector(rules, frozenset()), grouped) == ["bulk_volume"]


def test_the_threshold_follows_the_baseline_of_busy_callers() -> None:
    rules = Breach(subjects_per_window=10, baseline_factor=2, window_seconds=3600)
    detector = BulkDetector(rules, frozenset())
    yesterday = [doc([f"cus_a{i}x"], when=MONDAY_NOON - timedelta(days=1)) for i in range(30)]
    for document in yesterday:
        access = access_from(document)
        assert access is not None
        detector.observe(access, learning=True)
    # a busiest past window of 30 subjects: 60 today is normal-ish, 61 is a spike
    today = [doc([f"cus_b{i}x"]) for i in range(61)]
    names = run(detector, today)
    assert names == ["bulk_volume"]


def findings_of(detector: BulkDetector, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for document in documents:
        access = access_from(document)
        assert access is not None
        found += [{"name": f.name, **f.related} for f in detector.observe(access)]
    return found


EDGE = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # a fixed window's edge (window_seconds = 3600)


def test_a_bulk_read_split_across_a_window_edge_is_seen_whole() -> None:
    detector = BulkDetector(Breach(subjects_per_window=100, window_seconds=3600), frozenset())
    before = [doc([f"cus_p{i}x"], when=EDGE - timedelta(seconds=60 - i)) for i in range(60)]
    after = [doc([f"cus_q{i}x"], when=EDGE + timedelta(seconds=i)) for i in range(60)]
    [finding] = findings_of(detector, before + after)
    # the 101st subject within one hour, the 41st after the edge; the first part is no baseline
    assert (finding["name"], finding["subjects_in_window"], finding["threshold"]) == ("bulk_volume", 101, 100)
    assert finding["baseline"] == 0


def test_records_across_a_window_edge_are_counted_whole_in_bounded_memory() -> None:
    detector = BulkDetector(Breach(records_per_window=1000, window_seconds=3600), frozenset())
    # one subject listed over and over, 600 records in the last ten minutes before the edge, 600 after
    lists = [doc(["cus_r1x"] * 10, grouped=True, when=EDGE + timedelta(seconds=i - 600)) for i in range(0, 1200, 10)]
    found = findings_of(detector, lists)
    assert [(f["name"], f["records_in_window"], f["threshold"]) for f in found] == [("bulk_records", 1010, 1000)]
    tally = detector.tallies["principal:logistics-co"]
    assert len(tally.record_steps) <= 64 + 1  # steps of a window, not one entry per request


def test_a_steady_reader_never_fills_the_sliding_window() -> None:
    detector = BulkDetector(Breach(subjects_per_window=100, window_seconds=3600), frozenset())
    # 90 subjects an hour, one every 40 seconds, for five hours: never more than 91 in any hour
    steady = [doc([f"cus_s{i}x"], when=EDGE + timedelta(seconds=40 * i)) for i in range(450)]
    assert findings_of(detector, steady) == []


def test_a_volume_alarm_is_raised_again_only_after_the_count_fell_under_the_limit() -> None:
    detector = BulkDetector(Breach(subjects_per_window=5, window_seconds=3600, baseline_factor=1), frozenset())
    burst = [doc([f"cus_a{i}x"], when=EDGE + timedelta(seconds=i)) for i in range(20)]
    assert [f["name"] for f in findings_of(detector, burst)] == ["bulk_volume"]  # one incident, not fifteen
    # two hours later the first burst has left the window: the same read is a new incident, judged
    # against the floor (the burst taught the baseline nothing)
    later = EDGE + timedelta(hours=2, seconds=30)
    again = [doc([f"cus_b{i}x"], when=later + timedelta(seconds=i)) for i in range(20)]
    [finding] = findings_of(detector, again)
    assert (finding["subjects_in_window"], finding["threshold"], finding["baseline"]) == (6, 5, 0)


def test_a_bulk_read_that_raised_an_alarm_never_becomes_the_baseline() -> None:
    rules = Breach(subjects_per_window=10, records_per_window=50, baseline_factor=2, window_seconds=3600)
    detector = BulkDetector(rules, frozenset())
    # an exfiltration of 1,000 subjects (and 1,000 records) in one window: alarmed once each
    taken = [
        doc([f"cus_x{i}x" for i in range(n, n + 100)], grouped=True, when=EDGE + timedelta(minutes=n // 100))
        for n in range(0, 1000, 100)
    ]
    assert sorted(f["name"] for f in findings_of(detector, taken)) == ["bulk_records", "bulk_volume"]
    # a day later the same read is judged against the floor again, not against 2 x 1,000
    tomorrow = EDGE + timedelta(days=1)
    again = [
        doc([f"cus_y{i}x" for i in range(n, n + 100)], grouped=True, when=tomorrow + timedelta(minutes=n // 100))
        for n in range(0, 1000, 100)
    ]
    found = {f["name"]: f for f in findings_of(detector, again)}
    assert sorted(found) == ["bulk_records", "bulk_volume"]
    assert (found["bulk_volume"]["threshold"], found["bulk_volume"]["baseline"]) == (10, 0)
    assert found["bulk_records"]["threshold"] == 50
    # the same holds when the history is replayed at start (learning, no findings)
    fresh = BulkDetector(rules, frozenset())
    for document in taken:
        access = access_from(document)
        assert access is not None
        assert fresh.observe(access, learning=True) == []
    assert sorted(f["name"] for f in findings_of(fresh, again)) == ["bulk_records", "bulk_volume"]


def test_growth_within_the_limit_is_learnt() -> None:
    detector = BulkDetector(Breach(subjects_per_window=10, baseline_factor=2, window_seconds=3600), frozenset())
    # 9 subjects in a window (under the floor of 10): learnt once that window is a window ago
    usual = [doc([f"cus_u{i}x"], when=EDGE + timedelta(minutes=i)) for i in range(9)]
    assert findings_of(detector, usual) == []
    later = EDGE + timedelta(hours=3)
    grown = [doc([f"cus_g{i}x"], when=later + timedelta(seconds=i)) for i in range(18)]
    assert findings_of(detector, grown) == []  # up to 2 x 9
    [finding] = findings_of(detector, [doc(["cus_g99x"], when=later + timedelta(seconds=30))])
    assert (finding["subjects_in_window"], finding["threshold"], finding["baseline"]) == (19, 18, 9)


def test_customers_reading_their_own_data_are_never_a_signal() -> None:
    detector = BulkDetector(Breach(subjects_per_window=1), frozenset())
    own = [doc(["cus_1"], principal="cus_1", recipient=None, action="read") for _ in range(5)]
    assert run(detector, own) == []


def test_breadth_needs_history_then_reports_a_new_category() -> None:
    detector = BulkDetector(Breach(learning_disclosures=5), frozenset())
    history = [doc([f"cus_{i}q"]) for i in range(5)]
    assert run(detector, history) == []
    names = run(detector, [doc(["cus_zz"], categories=("user.financial.card.number",))])
    assert names == ["new_categories"]


def test_staff_off_hours_and_new_network() -> None:
    detector = BulkDetector(Breach(learning_disclosures=3), frozenset({"support"}))
    staff = {"principal": "staff-1", "recipient": "support"}
    day = [doc([f"cus_{i}w"], **staff) for i in range(3)]
    assert run(detector, day) == []
    night = MONDAY_NOON.replace(hour=2)
    assert run(detector, [doc(["cus_9w"], when=night, **staff)]) == ["off_hours_access"]
    assert run(detector, [doc(["cus_8w"], network="203.0.113.9", **staff)]) == ["new_network"]
    saturday = MONDAY_NOON + timedelta(days=5)
    assert run(detector, [doc(["cus_7w"], when=saturday, **staff)]) == ["off_hours_access"]


def test_partners_are_not_staff() -> None:
    detector = BulkDetector(Breach(), frozenset({"support"}))
    assert run(detector, [doc(["cus_1"], when=MONDAY_NOON.replace(hour=3))]) == []


def test_enumeration_of_sequential_ids() -> None:
    detector = BulkDetector(Breach(enumeration_run=20), frozenset())
    names = run(detector, [doc([f"cus_{1000 + i}"]) for i in range(19)])
    assert names == []
    assert run(detector, [doc(["cus_1019"])]) == ["enumeration"]


@settings(max_examples=50, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=60))
def test_enumeration_fires_exactly_when_a_run_of_the_threshold_exists(numbers: set[int]) -> None:
    detector = BulkDetector(Breach(enumeration_run=5, subjects_per_window=10_000), frozenset())
    names = run(detector, [doc([f"cus_{n}"]) for n in sorted(numbers, key=lambda n: (n * 7919) % 10_007)])
    ordered = sorted(numbers)
    longest = run_length = 1
    for a, b in pairwise(ordered):
        run_length = run_length + 1 if b == a + 1 else 1
        longest = max(longest, run_length)
    assert ("enumeration" in names) == (longest >= 5)


def test_export_burst() -> None:
    detector = BulkDetector(Breach(exports_per_window=3), frozenset())
    exports = [doc([f"cus_{i}e"], principal="cli", recipient="customer", action="export") for i in range(4)]
    assert run(detector, exports) == ["export_burst"]


def test_one_incident_is_one_finding() -> None:
    detector = BulkDetector(Breach(subjects_per_window=2, dedup_seconds=3600), frozenset())
    dedup = Deduplicator(3600)
    raised = []
    for i in range(10):
        access = access_from(doc([f"cus_{i}d"]))
        assert access is not None
        raised += [f.name for f in detector.observe(access) if dedup.allow(f)]
    assert raised == ["bulk_volume"]
