"""The local append-only spool used while the audit store is unreachable.

JSON lines of sealed events (no personal value in clear), each batch fsynced. Replay renames
the file first, so batches spooled during a replay land in a fresh file and keep their order.
Each writer spools in a slot of its own (`SpoolSlot`), so processes sharing a spool directory never
rename or remove each other's files.
The same format holds the overflow: events emitted while the in-memory queue is full are appended
(without waiting for fsync; the writer syncs them) instead of being dropped.
"""

from __future__ import annotations

import itertools
import os
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

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
    """One spool file (and the file it is renamed to for replay) in a directory, or in the
    process's own slot of a shared spool directory (claimed at first use, see `SpoolSlot`)."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        name: str = "audit-spool",
        *,
        slot: SpoolSlot | None = None,
    ) -> None:
        if (directory is None) == (slot is None):
            raise ValueError("a spool lives in a directory or in a slot")
        self._directory = Path(directory) if directory is not None else None
        self.slot = slot
        self.name = name

    @property
    def directory(self) -> Path:
        return self._directory if self._directory is not None else self.slot.directory  # type: ignore[union-attr]

    @property
    def path(self) -> Path:
        return self.directory / f"{self.name}.jsonl"

    @property
    def replaying(self) -> Path:
        return self.directory / f"{self.name}.replaying.jsonl"

    def usable(self) -> bool:
        """Whether the spool's directory exists or could be made (a query on an unusable one finds
        nothing; an append to it raises, and the writer counts what it could not keep)."""
        try:
            return self.directory.is_dir()
        except OSError:
            return False

    def pending(self) -> bool:
        if not self.usable():
            return False
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
        if not self.usable():
            return
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
        if not self.usable():
            return False
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


def _try_lock(path: Path) -> int | None:
    """An exclusive advisory lock on `path` (an open descriptor), or None when another open file
    holds it. The lock lasts while the descriptor is open, and ends with the process however it ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is None:  # no advisory locks here: one slot, as a single process would use
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class SpoolSlot:
    """This process's own sub-directory of the spool directory (`process-<n>`), held by a lock.

    Workers of one server (`serve --workers`, gunicorn, uvicorn) share their settings and so their
    spool directory; two writers renaming and unlinking one file would lose the batches a third
    process appended in between. Each writer therefore spools in the first slot no live process
    holds (a restarted worker usually gets its predecessor's slot back and replays it). When it
    claims its slot, and again at each start, it adopts the files of slots nobody holds, and those
    of the layout without slots, into its own spool (`names[0]`).

    The slot is claimed at first use, not at construction: a spool directory that cannot be
    created is an error of the first append (counted, alarmed), never of building the writer.
    """

    PREFIX = "process-"

    def __init__(self, root: str | os.PathLike[str], names: Sequence[str]) -> None:
        self.root = Path(root)
        self.names = tuple(names)
        self._directory: Path | None = None
        self._lock: int | None = None

    @property
    def directory(self) -> Path:
        if self._directory is None:
            self._claim()
            self.adopt_orphans()
        return self._directory  # type: ignore[return-value]

    def _claim(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            directory = self.root / f"{self.PREFIX}{n}"
            directory.mkdir(exist_ok=True)
            lock = _try_lock(directory / "owner.lock")
            if lock is not None:
                self._directory, self._lock = directory, lock
                self._release = weakref.finalize(self, os.close, lock)
                return

    def reclaim(self) -> None:
        """After `release`, claim a slot again at next use (the writer starts again)."""
        if self._lock is None:
            self._directory = None

    def release(self) -> None:
        """Let another writer claim or adopt this slot (the writer stopped). Events emitted after
        that still go to this directory, where the next writer to claim or adopt it finds them."""
        if self._lock is not None:
            self._release()
            self._lock = None

    def adopt_orphans(self) -> int:
        """Move the spooled files of unheld slots (and of the spool directory itself) into this
        slot's first spool; returns how many files were adopted. Each file is first renamed into
        this slot (one process wins it), then appended and removed: a crash in between leaves a
        duplicate, which replay skips by event id, never a loss."""
        mine = self.directory
        adopted = 0
        for source in [self.root, *sorted(self.root.glob(f"{self.PREFIX}*"))]:
            if source == mine or not source.is_dir():
                continue
            lock = None if source == self.root else _try_lock(source / "owner.lock")
            if source != self.root and lock is None:
                continue  # a live process spools there
            try:
                for name in self.names:
                    for file in (source / f"{name}.replaying.jsonl", source / f"{name}.jsonl"):
                        adopted += self._adopt(file, mine / f"{self.names[0]}.jsonl")
            finally:
                if lock is not None:
                    os.close(lock)
        return adopted

    def _adopt(self, file: Path, into: Path) -> int:
        claimed = into.parent / f"adopting-{time.time_ns()}-{file.parent.name}-{file.name}"
        try:
            os.replace(file, claimed)
        except FileNotFoundError:
            return 0  # nothing there, or another process adopted it first
        data = claimed.read_bytes()
        if data and not data.endswith(b"\n"):
            data += b"\n"  # a torn last line stays a line of its own (replay reports it)
        fd = os.open(into, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(claimed)
        _fsync_dir(into.parent)
        return 1
