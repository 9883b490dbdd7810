"""The checkpoint signing key: an Ed25519 PEM file kept outside the audit database."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..keyfiles import load_or_create_ed25519


def load_or_create_signing_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load the key, creating it (mode 0600, never overwriting) on first use."""
    return load_or_create_ed25519(path, "audit signing key")
