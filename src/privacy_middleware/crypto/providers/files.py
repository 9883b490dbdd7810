"""Private files for key material and tombstones: created 0600, refused when others can read them."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator

from ...errors import ConfigError


def check_private(path: str, what: str) -> None:
    """Refuse a key file that group or other users can read or write."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"the {what} {path} is not a regular file")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise ConfigError(
            f"the {what} {path} is accessible to other users (mode {mode:04o}); restrict it with: chmod 600 {path}"
        )


def create_private(path: str, content: bytes) -> bool:
    """Create `path` atomically with mode 0600; False when it already exists (left untouched)."""
    directory = os.path.dirname(path)
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


def replace_private(path: str, content: bytes) -> None:
    """Replace `path` atomically with new content, keeping mode 0600."""
    directory = os.path.dirname(path)
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
def exclusive(path: str) -> Iterator[None]:
    """An advisory lock beside `path`, so two processes never lose each other's update."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
