"""Bulk-access detection: per principal and per recipient tallies over the data-access trail.

Each caller (a principal, and separately the recipient it acts for) has a counting window and a
baseline learnt from its past windows: the busiest window seen, the categories it has read and,
for staff, the networks it reads from. A window above `baseline_factor` times the baseline (and
above the policy's floor) is a volume spike; a category never read before is breadth; staff
reading outside office hours or from a new network, a run of sequential ids, and a burst of
exports are reported too. Learning (replaying the stored trail at start) uses the same code
with findings switched off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..policy.schema import Breach
from .facts import Access
from .findings import Finding

_TRAILING_NUMBER = re.compile(r"(\d{1,15})$")


@dataclass(slots=True)
class Tally:
    window: int = -1
    subjects: set[str] = field(default_factory=set)
    records: int = 0
    exports: int = 0
    numbers: set[int] = field(default_factory=set)
    peak_subjects: int = 0
    peak_records: int = 0
    categories: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    disclosures: int = 0
    volume_raised: bool = False
    records_raised: bool = False
    enumeration_raised: bool = False
    export_raised: bool = False

    def roll(self, window: int) -> None:
        if window == self.window:
            return
        if self.window >= 0:
            self.peak_subjects = max(self.peak_subjects, len(self.subjects))
            self.peak_records = max(self.peak_records, self.records)
        self.window = window
        self.subjects = set()
        self.records = self.exports = 0
        self.numbers = set()
        self.volume_raised = self.records_raised = self.enumeration_raised = self.export_raised = False


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
        tally.subjects.update(access.subjects)
        tally.records += access.records
        if access.action == "export":
            tally.exports += 1

        limit = max(rules.subjects_per_window, int(rules.baseline_factor * tally.peak_subjects))
        if len(tally.subjects) > limit and not tally.volume_raised:
            tally.volume_raised = True
            found.append(
                self._finding(
                    "bulk_volume",
                    access,
                    keys,
                    basis=key,
                    subjects_in_window=len(tally.subjects),
                    threshold=limit,
                    baseline=tally.peak_subjects,
                    window_seconds=int(rules.window_seconds),
                )
            )
        record_limit = max(rules.records_per_window, int(rules.baseline_factor * tally.peak_records))
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

        if access.action == "export" and tally.exports > rules.exports_per_window and not tally.export_raised:
            tally.export_raised = True
            found.append(
                self._finding(
                    "export_burst",
                    access,
                    keys,
                    basis=key,
                    exports_in_window=tally.exports,
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
