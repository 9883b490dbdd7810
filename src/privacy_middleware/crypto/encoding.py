"""Small byte encodings shared by envelopes, wrapped keys and associated data."""

from __future__ import annotations

import base64
import binascii
import re
import struct

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url: safe inside JSON strings, URLs and most backend string columns.
    (`base64.urlsafe_b64encode` without its two Python calls: every sealed field makes one.)"""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict inverse of `b64url_encode`: rejects padding, other alphabets and non-canonical input."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not unpadded base64url") from None
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def length_prefixed(*parts: bytes | str) -> bytes:
    """Canonical encoding of a tuple: uint32 big-endian length before each part.

    No two different tuples encode alike, so associated data cannot be shifted between fields
    (for example category "a.b" + subject "c" versus category "a" + subject "b.c").
    """
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        out += struct.pack(">I", len(raw))
        out += raw
    return bytes(out)
