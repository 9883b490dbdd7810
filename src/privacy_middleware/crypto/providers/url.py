"""Shared checks of PRIVACY_KEYS URLs: known options only, absolute paths, loopback hosts."""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import parse_qsl

from ...errors import ConfigError


def url_options(query: str, allowed: set[str], scheme: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"PRIVACY_KEYS {scheme} URL has unknown option(s): {', '.join(unknown)}")
    for name in ("token_file", "tombstone_file"):
        if name in options and not os.path.isabs(options[name]):
            raise ConfigError(f"PRIVACY_KEYS {name} must be an absolute path")
    return options


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
