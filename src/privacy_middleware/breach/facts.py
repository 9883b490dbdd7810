"""What a detector needs from one audit event, read from the event's document alone.

Works with both shapes of a data-access event: one event per subject (`subject` at the top) or
one event per disclosure listing its subjects (`detail.subjects`), so detectors do not depend on
how the writer groups them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ACCESS_PREFIX = "api_activity.data_"
WATCHED_ACTIONS = frozenset({"read", "reveal", "disclose", "export"})


@dataclass(frozen=True, slots=True)
class Access:
    """One disclosure of personal data: who, to whom, whose, which categories, from where."""

    uid: str
    time_us: int
    action: str
    principal: str | None
    recipient: str | None
    subjects: tuple[str, ...]
    categories: tuple[str, ...]
    route: str | None
    network: str | None
    records: int

    @property
    def own(self) -> bool:
        """A customer reading or exporting their own data (never a breach signal)."""
        return self.subjects == (self.principal,)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if isinstance(v, str | int) and not isinstance(v, bool))
    return ()


def access_from(doc: Mapping[str, Any]) -> Access | None:
    """The access an event document records, or None for any other kind of event."""
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind.startswith(ACCESS_PREFIX):
        return None
    action = kind[len(ACCESS_PREFIX) :]
    if action not in WATCHED_ACTIONS:
        return None
    detail = doc.get("detail")
    detail = detail if isinstance(detail, Mapping) else {}
    subjects = _strings(detail.get("subjects"))
    if not subjects and isinstance(doc.get("subject"), str):
        subjects = (doc["subject"],)
    if not subjects:
        return None
    count = detail.get("record_count")
    time_us = doc.get("time_us")
    if not isinstance(time_us, int):
        from ..audit.events import parse_time, to_micros

        try:
            time_us = to_micros(parse_time(str(doc.get("time"))))
        except ValueError:
            return None
    principal = doc.get("principal")
    recipient = detail.get("recipient")
    route = detail.get("route")
    network = detail.get("network")
    return Access(
        uid=str(doc.get("uid", "")),
        time_us=time_us,
        action=action,
        principal=principal if isinstance(principal, str) else None,
        recipient=recipient if isinstance(recipient, str) else None,
        subjects=tuple(dict.fromkeys(subjects)),
        categories=_strings(detail.get("categories")),
        route=route if isinstance(route, str) else None,
        network=network if isinstance(network, str) else None,
        records=count if isinstance(count, int) and count > 0 else len(subjects),
    )
