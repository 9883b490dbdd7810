"""Key material kept in files, in one place: created on first use (0600, atomically, never
overwritten), refused when other users can read or write them.

Used for development defaults of secrets, the Ed25519 signing keys kept outside the database (audit
checkpoints, consent and erasure receipts), the local keyring and the key providers' tombstones.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import ConfigError

logger = logging.getLogger("privacy_middleware")


def check_private(path: str | os.PathLike[str], what: str) -> None:
    """Refuse a key file that is not a regular file, or that group or other users can read or write."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"the {what} {path} is not a regular file")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise ConfigError(
            f"the {what} {path} is readable by other users (mode {mode:04o}); restrict it with: chmod 600 {path}"
        )


def create_private(path: str | os.PathLike[str], content: bytes) -> bool:
    """Create `path` atomically with mode 0600 (complete or absent, never half-written); False when it
    already exists (left untouched)."""
    directory = os.path.dirname(os.fspath(path)) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".new")
    try:
        os.write(fd, content)
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temp)


def replace_private(path: str | os.PathLike[str], content: bytes) -> None:
    """Replace `path` atomically with new content, keeping mode 0600."""
    directory = os.path.dirname(os.fspath(path)) or "."
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".new")
    try:
        os.write(fd, content)
        os.fsync(fd)
        os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str]) -> Iterator[None]:
    """An advisory lock beside `path`, so two processes never lose each other's update."""
    fd = os.open(os.fspath(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def load_or_create_ed25519(path: str | os.PathLike[str], label: str = "signing key") -> Ed25519PrivateKey:
    """An Ed25519 private key in a PEM file, created on first use."""
    target = Path(path)
    if not target.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if create_private(target, pem):
            return key
    check_private(target, label)
    try:
        loaded = serialization.load_pem_private_key(target.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{label} {target} is not an unencrypted PEM private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{label} {target} is not an Ed25519 key")
    return loaded


def load_or_create_signing_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The audit checkpoint (and erasure receipt) signing key."""
    return load_or_create_ed25519(path, "audit signing key")


def load_or_create_secret(path: str | os.PathLike[str], label: str = "secret") -> bytes:
    """32 random bytes kept hex-encoded; a warning says it is a development default."""
    target = Path(path)
    if not target.exists() and create_private(target, secrets.token_bytes(32).hex().encode()):
        logger.warning("created %s %s: a development default; configure it explicitly in production", label, target)
    check_private(target, label)
    try:
        value = bytes.fromhex(target.read_text().strip())
    except ValueError:
        raise ConfigError(f"{label} {target} is not hex") from None
    if len(value) < 16:
        raise ConfigError(f"{label} {target} is shorter than 16 bytes")
    return value
