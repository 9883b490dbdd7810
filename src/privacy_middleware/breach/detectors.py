"""Bulk-access detection: per principal and per recipient tallies over the data-access trail.

Each caller (a principal, and separately the recipient it acts for) has a counting window and a
baseline learnt from its past windows: the busiest window seen, the categories it has read and,
for staff, the networks it reads from. Subjects, records and exports are counted over a
*sliding* window (the last `window_seconds`), so a bulk read split across a window edge is seen
whole; the baseline learns from fixed windows that ended at least one window ago, so the reads
being judged are never part of the baseline they are judged against. A count above
`baseline_factor` times the baseline (and above the policy's floor) is a volume spike, raised
once until the count falls back under the limit; the fixed window it happened in teaches the
baseline nothing, so a bulk read that raised an alarm never becomes the normal the next one is
judged against (growth within the limit is learnt; a larger step needs the policy's floor
raised). A category never read before is breadth; staff reading outside office hours or from a
new network, a run of sequential ids, and a burst of exports are reported too. Learning
(replaying the stored trail at start) uses the same code with findings switched off.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..policy.schema import Breach
from .facts import Access
from .findings import Finding

_TRAILING_NUMBER = re.compile(r"(\d{1,15})$")


STEPS = 64  # a sliding window's records and exports are counted in steps of 1/STEPS of the window


def _step_us(window_us: int) -> int:
    return max(1, window_us // STEPS)


def _count(steps: deque[list[int]], step: int, n: int) -> None:
    if steps and steps[-1][0] >= step:  # the newest step (or a late event): counted there
        steps[-1][1] += n
    else:
        steps.append([step, n])


@dataclass(slots=True)
class Tally:
    window: int = -1  # the fixed window the baseline learns from
    # The sliding window: subject -> its last read (oldest first); records and exports per step of
    # 1/STEPS of a window as [step, count] (memory bounded by STEPS, not by the request rate).
    recent: dict[str, int] = field(default_factory=dict)
    record_steps: deque[list[int]] = field(default_factory=deque)
    records: int = 0
    export_steps: deque[list[int]] = field(default_factory=deque)
    exports: int = 0
    numbers: set[int] = field(default_factory=set)
    # the busiest sliding counts seen in the current fixed window, in the one before it (still
    # overlapping the sliding window, so not yet learnt), and in all windows before those
    window_subjects: int = 0
    window_records: int = 0
    pending_subjects: int = 0
    pending_records: int = 0
    peak_subjects: int = 0
    peak_records: int = 0
    # the current fixed window went over its subjects (records) limit: it is not learnt
    window_over_subjects: bool = False
    window_over_records: bool = False
    categories: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    disclosures: int = 0
    volume_raised: bool = False
    records_raised: bool = False
    enumeration_raised: bool = False
    export_raised: bool = False

    def roll(self, window: int) -> None:
        """Start fixed window `window`: the window before the last one becomes baseline."""
        if window <= self.window:
            return
        if self.window >= 0:
            self.peak_subjects = max(self.peak_subjects, self.pending_subjects)
            self.peak_records = max(self.peak_records, self.pending_records)
            # a window that went over its limit is an anomaly, not a baseline: it teaches nothing
            self.pending_subjects = 0 if self.window_over_subjects else self.window_subjects
            self.pending_records = 0 if self.window_over_records else self.window_records
            if window - self.window > 1:  # the closing window is itself more than a window ago
                self.peak_subjects = max(self.peak_subjects, self.pending_subjects)
                self.peak_records = max(self.peak_records, self.pending_records)
                self.pending_subjects = self.pending_records = 0
        self.window = window
        self.window_subjects = self.window_records = 0
        self.window_over_subjects = self.window_over_records = False
        self.numbers = set()
        self.enumeration_raised = False

    def slide(self, now_us: int, window_us: int) -> None:
        """Forget what was read more than one window before `now_us` (records and exports: once
        their whole step is, so a count errs by at most one step, upwards)."""
        start = now_us - window_us
        recent = self.recent
        while recent:
            subject = next(iter(recent))
            if recent[subject] > start:
                break
            del recent[subject]
        first_kept = start // _step_us(window_us)
        while self.record_steps and self.record_steps[0][0] < first_kept:
            self.records -= self.record_steps.popleft()[1]
        while self.export_steps and self.export_steps[0][0] < first_kept:
            self.exports -= self.export_steps.popleft()[1]

    def add(self, subjects: tuple[str, ...], records: int, now_us: int, window_us: int, *, export: bool) -> None:
        recent = self.recent
        for subject in subjects:
            recent.pop(subject, None)  # re-inserted as the newest
            recent[subject] = now_us
        step = now_us // _step_us(window_us)
        _count(self.record_steps, step, records)
        self.records += records
        if export:
            _count(self.export_steps, step, 1)
            self.exports += 1
        self.window_subjects = max(self.window_subjects, len(recent))
        self.window_records = max(self.window_records, self.records)


class BulkDetector:
    def __init__(self, rules: Breach, staff_recipients: frozenset[str]) -> None:
        self.rules = rules
        self.staff = staff_recipients
        self.window_us = int(rules.window_seconds * 1_000_000)
        self.tallies: dict[str, Tally] = {}

    def observe(self, access: Access, *, learning: bool = False) -> list[Finding]:
        if access.own:
            return []
        found: list[Finding] = []
        keys = []
        if access.principal:
            keys.append(f"principal:{access.principal}")
        if access.recipient:
            keys.append(f"recipient:{access.recipient}")
        window = access.time_us // self.window_us
        names: set[str] = set()
        for key in keys:
            tally = self.tallies.setdefault(key, Tally())
            tally.roll(window)
            tally.slide(access.time_us, self.window_us)
            for finding in self._check(key, tally, access, keys):
                if finding.name not in names:  # the principal's and its recipient's alarm: one incident
                    names.add(finding.name)
                    found.append(finding)
        return [] if learning else found

    def _finding(self, name: str, access: Access, keys: list[str], **related: object) -> Finding:
        return Finding(
            name=name,
            principal=access.principal,
            recipient=access.recipient,
            route=access.route,
            network=access.network,
            time_us=access.time_us,
            keys=tuple(keys),
            related=dict(related),
        )

    def _check(self, key: str, tally: Tally, access: Access, keys: list[str]) -> list[Finding]:
        keys = [key]  # the incident is this caller's: another principal of the recipient is another one
        rules = self.rules
        found: list[Finding] = []
        experienced = tally.disclosures >= rules.learning_disclosures
        tally.disclosures += 1
        exporting = access.action == "export"
        limit = max(rules.subjects_per_window, int(rules.baseline_factor * tally.peak_subjects))
        record_limit = max(rules.records_per_window, int(rules.baseline_factor * tally.peak_records))
        # Back under a limit (as the window slid, before this access, or after it): the next excess
        # is another incident, also when it comes in one disclosure after a quiet spell.
        if len(tally.recent) <= limit:
            tally.volume_raised = False
        if tally.records <= record_limit:
            tally.records_raised = False
        tally.add(access.subjects, access.records, access.time_us, self.window_us, export=exporting)

        subjects = len(tally.recent)
        if subjects <= limit:
            tally.volume_raised = False
        else:
            tally.window_over_subjects = True
        if subjects > limit and not tally.volume_raised:
            tally.volume_raised = True
            found.append(
                self._finding(
                    "bulk_volume",
                    access,
                    keys,
                    basis=key,
                    subjects_in_window=subjects,
                    threshold=limit,
                    baseline=tally.peak_subjects,
                    window_seconds=int(rules.window_seconds),
                )
            )
        if tally.records <= record_limit:
            tally.records_raised = False
        else:
            tally.window_over_records = True
        if tally.records > record_limit and not tally.records_raised:
            tally.records_raised = True
            found.append(
                self._finding(
                    "bulk_records", access, keys, basis=key, records_in_window=tally.records, threshold=record_limit
                )
            )

        fresh = sorted(set(access.categories) - tally.categories)
        if fresh and experienced:
            found.append(self._finding("new_categories", access, keys, basis=key, categories=fresh))
        tally.categories.update(access.categories)

        if access.recipient in self.staff and key.startswith("principal:"):
            moment = datetime.fromtimestamp(access.time_us / 1_000_000, UTC)
            start, end = rules.office_hours
            if moment.weekday() not in rules.office_days or not start <= moment.hour < end:
                found.append(
                    self._finding("off_hours_access", access, [key], hour_utc=moment.hour, weekday=moment.weekday())
                )
            if access.network and access.network not in tally.networks:
                if experienced and tally.networks:
                    found.append(self._finding("new_network", access, [key], known_networks=len(tally.networks)))
                tally.networks.add(access.network)

        if not tally.enumeration_raised:
            run = self._longest_run(tally, access.subjects)
            if run >= rules.enumeration_run:
                tally.enumeration_raised = True
                found.append(self._finding("enumeration", access, keys, basis=key, sequential_ids=run))

        exports = tally.exports
        if exports <= rules.exports_per_window:
            tally.export_raised = False
        elif exporting and not tally.export_raised:
            tally.export_raised = True
            found.append(
                self._finding(
                    "export_burst",
                    access,
                    keys,
                    basis=key,
                    exports_in_window=exports,
                    threshold=rules.exports_per_window,
                )
            )
        return found

    @staticmethod
    def _longest_run(tally: Tally, subjects: tuple[str, ...]) -> int:
        best = 0
        for subject in subjects:
            match = _TRAILING_NUMBER.search(subject)
            if match is None:
                continue
            number = int(match.group(1))
            tally.numbers.add(number)
            low = number
            while low - 1 in tally.numbers:
                low -= 1
            high = number
            while high + 1 in tally.numbers:
                high += 1
            best = max(best, high - low + 1)
        return best
