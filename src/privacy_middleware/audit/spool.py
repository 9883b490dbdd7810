"""The local append-only spool used while the audit store is unreachable.

JSON lines of sealed events (no personal value in clear), each batch fsynced. Replay renames
the file first, so batches spooled during a replay land in a fresh file and keep their order.
The same format holds the overflow: events emitted while the in-memory queue is full are appended
(without waiting for fsync; the writer syncs them) instead of being dropped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from .sealing import SealedEvent


class SpoolCorruptError(Exception):
    """A spool file had lines that are not sealed events; the message names file and line."""

    def __init__(self, path: Path, first_bad_line: int, bad_lines: int, kept_in: Path | None) -> None:
        where = f"; bad lines kept in {kept_in}" if kept_in else ""
        super().__init__(
            f"audit spool {path} is corrupt at line {first_bad_line} ({bad_lines} bad line(s));"
            f" the other records were replayed{where}"
        )
        self.path = path
        self.first_bad_line = first_bad_line
        self.bad_lines = bad_lines
        self.kept_in = kept_in


@dataclass(frozen=True, slots=True)
class SpoolContents:
    path: Path
    events: list[SealedEvent]
    bad: list[tuple[int, bytes]]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: str | os.PathLike[str], name: str = "audit-spool") -> None:
        self.directory = Path(directory)
        self.name = name
        self.path = self.directory / f"{name}.jsonl"
        self.replaying = self.directory / f"{name}.replaying.jsonl"

    def pending(self) -> bool:
        return any(p.exists() and p.stat().st_size > 0 for p in (self.replaying, self.path))

    def append(self, events: Sequence[SealedEvent], *, sync: bool = True) -> None:
        """Append; with `sync` (the default) fsync and return only once the batch is durable."""
        created = not self.path.exists()
        if created:
            self.directory.mkdir(parents=True, exist_ok=True)
        data = b"".join(orjson.dumps(e.to_json()) + b"\n" for e in events)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if created and sync:
            _fsync_dir(self.directory)

    def sync(self) -> None:
        """Make records appended with `sync=False` durable."""
        for path in (self.path, self.replaying):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if self.directory.exists():
            _fsync_dir(self.directory)

    def claim(self) -> bool:
        """Set the current file aside for replay (appends then start a new file); False if empty.

        Call it on the thread that appends, so no append can land in a file already read."""
        if self.replaying.exists():
            return True
        if not self.path.exists():
            return False
        os.replace(self.path, self.replaying)
        return True

    def take(self) -> SpoolContents | None:
        """The oldest spooled records (an interrupted replay first), parsed line by line."""
        if not self.claim():
            return None
        return self.read()

    def read(self) -> SpoolContents | None:
        """The records of the claimed file, parsed line by line."""
        if not self.replaying.exists():
            return None
        _fsync_dir(self.directory)
        events: list[SealedEvent] = []
        bad: list[tuple[int, bytes]] = []
        with open(self.replaying, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    events.append(SealedEvent.from_json(orjson.loads(line)))
                except (orjson.JSONDecodeError, ValueError):
                    bad.append((number, line))
        return SpoolContents(path=self.path, events=events, bad=bad)

    def quarantine(self, events: Sequence[SealedEvent]) -> Path:
        """Keep records the store refused, sealed as they were, beside the spool."""
        kept = self.directory / f"{self.name}.rejected-{time.time_ns()}.jsonl"
        fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"".join(orjson.dumps(e.to_json()) + b"\n" for e in events))
            os.fsync(fd)
        finally:
            os.close(fd)
        return kept

    def finish(self, contents: SpoolContents) -> Path | None:
        """Drop the replayed file; keep corrupt lines aside for forensics."""
        kept = None
        if contents.bad:
            kept = self.directory / f"{self.name}.corrupt-{time.time_ns()}.jsonl"
            fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"".join(line if line.endswith(b"\n") else line + b"\n" for _, line in contents.bad))
                os.fsync(fd)
            finally:
                os.close(fd)
        os.unlink(self.replaying)
        _fsync_dir(self.directory)
        return kept
