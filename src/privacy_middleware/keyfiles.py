"""Key material kept in files: created on first use (0600, never overwritten), refused when other
users can read it. Used for development defaults and for keys that must live outside the database
(audit checkpoint signing, consent receipts, pseudonyms)."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import ConfigError

logger = logging.getLogger("privacy_middleware")


def _create(target: Path, content: bytes) -> bool:
    """Write a new 0600 file; False when another process created it first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _check_private(target: Path, label: str) -> None:
    if target.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{label} {target} is readable by other users; run: chmod 600 {target}")


def load_or_create_ed25519(path: str | os.PathLike[str], label: str = "signing key") -> Ed25519PrivateKey:
    target = Path(path)
    if not target.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if _create(target, pem):
            return key
    _check_private(target, label)
    try:
        loaded = serialization.load_pem_private_key(target.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{label} {target} is not an unencrypted PEM private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{label} {target} is not an Ed25519 key")
    return loaded


def load_or_create_secret(path: str | os.PathLike[str], label: str = "secret") -> bytes:
    """32 random bytes kept hex-encoded; a warning says it is a development default."""
    target = Path(path)
    if not target.exists() and _create(target, secrets.token_bytes(32).hex().encode()):
        logger.warning("created %s %s: a development default; configure it explicitly in production", label, target)
    _check_private(target, label)
    try:
        value = bytes.fromhex(target.read_text().strip())
    except ValueError:
        raise ConfigError(f"{label} {target} is not hex") from None
    if len(value) < 16:
        raise ConfigError(f"{label} {target} is shorter than 16 bytes")
    return value
