"""What the SQL and Django adapters share: deciding a record's fate and what its fields become."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from dataclasses import dataclass
from typing import Any

from ...policy.schema import StoredRecords

# Anonymised text becomes "anonymised-<record key>": unique columns (usernames) stay unique.
ANONYMISED = "anonymised-"
ANONYMISED_ROOM = len(ANONYMISED) + 12


@dataclass(frozen=True, slots=True)
class Fate:
    """Delete the record, or keep it with some fields emptied or anonymised, and why."""

    delete: bool
    reason: str = ""


def fate(records: StoredRecords, holds: dict[str, str]) -> Fate:
    held = next((holds[c] for c in records.categories if c in holds), None)
    if held is not None:
        return Fate(False, held)
    if any(action == "keep" for action in records.fields.values()):
        return Fate(False, records.hold_reason or "kept under the policy's legal hold")
    return Fate(True)


def item(kind: str, key: Any) -> str:
    return f"{kind}:{key}"


def jsonable(value: Any) -> Any:
    """A database value as JSON can carry it (exports)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    return value
