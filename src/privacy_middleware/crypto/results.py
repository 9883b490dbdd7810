"""What the key service reports back: plain frozen dataclasses, safe to log and to serialise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ErasureResult:
    """Outcome of crypto-shredding one subject."""

    keys_destroyed: int
    tokens_destroyed: int
    tombstones_written: int
    root_side_recorded: bool
    erased_at: datetime


@dataclass(frozen=True, slots=True)
class SubjectHoldings:
    """What the key store holds for one subject: whether a key exists, its tokens, an erasure mark."""

    key_created_at: datetime | None
    tokens: tuple[tuple[str | None, datetime], ...]  # (category or None when unrecorded, created_at)
    erased: bool

    @property
    def has_key(self) -> bool:
        return self.key_created_at is not None


@dataclass(frozen=True, slots=True)
class RotationResult:
    """A new key generation is primary; older ones stay decrypt-only until rewrapped."""

    generation: int
    root_version: str
    previous_generation: int
    pending_rewrap: int


@dataclass(frozen=True, slots=True)
class RewrapResult:
    primary_generation: int
    root_version: str
    rewrapped: int
    failed: int
    remaining: int
    tenant_keys_rewrapped: int


@dataclass(frozen=True, slots=True)
class GenerationStatus:
    generation: int
    root_version: str
    primary: bool
    subject_keys: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyStatus:
    provider: str
    root: str
    tenant: str
    root_versions: tuple[str, ...]
    primary_generation: int
    generations: tuple[GenerationStatus, ...]
    index_key_root_version: str
    pending_rewrap: int
    tombstones: int
    tokens: int

    @property
    def subject_keys_by_generation(self) -> dict[int, int]:
        return {g.generation: g.subject_keys for g in self.generations}

    @property
    def subject_keys_by_root_version(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for g in self.generations:
            counts[g.root_version] = counts.get(g.root_version, 0) + g.subject_keys
        return counts
