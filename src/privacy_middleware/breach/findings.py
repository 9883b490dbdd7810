"""Findings: what a detector concluded, turned into an audit event, deduplicated per incident."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..audit.events import SEVERITY_CRITICAL, SEVERITY_HIGH, SEVERITY_MEDIUM, AuditEvent, detection_finding

TITLES = {
    "canary_accessed": ("A canary record was disclosed", SEVERITY_CRITICAL),
    "bulk_volume": ("Far more subjects read than this caller's baseline", SEVERITY_HIGH),
    "bulk_records": ("Far more records read than this caller's baseline", SEVERITY_HIGH),
    "new_categories": ("Categories of personal data this caller never read before", SEVERITY_MEDIUM),
    "off_hours_access": ("Staff access to personal data outside office hours", SEVERITY_MEDIUM),
    "new_network": ("Staff account reading personal data from a new network", SEVERITY_MEDIUM),
    "enumeration": ("Records read in sequential id order", SEVERITY_HIGH),
    "export_burst": ("Many data exports in a short time", SEVERITY_HIGH),
}


@dataclass(slots=True)
class Finding:
    """One conclusion; `keys` are the incident identities it is deduplicated on."""

    name: str
    principal: str | None
    recipient: str | None
    route: str | None
    network: str | None
    time_us: int
    keys: tuple[str, ...]
    related: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES[self.name][0]

    @property
    def severity(self) -> int:
        return TITLES[self.name][1]

    def event(self) -> AuditEvent:
        related = {
            "principal": self.principal,
            "recipient": self.recipient,
            "route": self.route,
            "network": self.network,
            **self.related,
        }
        return detection_finding(
            self.name,
            title=self.title,
            severity_id=self.severity,
            related={k: v for k, v in related.items() if v is not None},
        )


class Deduplicator:
    """The same finding about the same principal or recipient is raised once per `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.window_us = int(seconds * 1_000_000)
        self._last: dict[tuple[str, str], int] = {}
        self.suppressed = 0

    def allow(self, finding: Finding) -> bool:
        keys = [(finding.name, key) for key in finding.keys]
        if any(finding.time_us - self._last.get(k, -(2**62)) < self.window_us for k in keys):
            self.suppressed += 1
            return False
        for key in keys:
            self._last[key] = finding.time_us
        return True

    def forget(self, keys: Iterable[str]) -> None:
        """After an officer lifts a suspension, the next incident is a new finding."""
        drop = set(keys)
        for entry in [k for k in self._last if k[1] in drop]:
            del self._last[entry]
