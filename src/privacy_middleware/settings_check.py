"""Configuration that fails loudly: unknown PRIVACY_* names, bad values by variable name, production rules.

Every problem is collected and reported at once, by variable name, with the form expected and never
with the value given (it may be a secret). Used by `Settings()` at start-up and by `config check`.
"""

from __future__ import annotations

import difflib
import ipaddress
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from .errors import ConfigError

PREFIX = "PRIVACY_"
NESTED = "__"

# PRIVACY_* variables read outside the settings model (add yours here, and to docs/configuration.md).
OTHER_VARIABLES = {
    "PRIVACY_PROXY_UPSTREAM": "the upstream `serve` hands to its workers",
    "PRIVACY_PROXY_TIMEOUT": "the upstream timeout `serve` hands to its workers",
    "PRIVACY_PROXY_PRESERVE_HOST": "the Host option `serve` hands to its workers",
    "PRIVACY_DEMO_DIR": "the demo's data directory",
    "PRIVACY_TEST_POSTGRES": "the PostgreSQL server the test suite uses",
    "PRIVACY_TEST_REDIS": "the Redis server the test suite uses",
    "PRIVACY_PROPERTY_EXAMPLES": "examples per property test in the test suite",
    "PRIVACY_TEST_NATIVE": "whether the test suite requires the native disclosure pass to be built",
}

KEY_SCHEMES = ("local:///", "vault+https://", "vault+http://", "awskms://")


class SettingsError(ConfigError, ValueError):
    """Every configuration problem found, one per line; the app must not start."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} configuration problem(s):\n" + "\n".join(f"  - {problem}" for problem in problems)
        )


def model_variables(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """Every PRIVACY_* variable a settings model reads, by name."""
    names: dict[str, FieldInfo] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub, sub_info in annotation.model_fields.items():
                names[f"{PREFIX}{name.upper()}{NESTED}{sub.upper()}"] = sub_info
        else:
            names[f"{PREFIX}{name.upper()}"] = info
    return names


def unknown_variables(environ: Mapping[str, str], model: type[BaseModel]) -> list[str]:
    """PRIVACY_* variables nobody reads (a typo is silently ignored otherwise), with the closest known name."""
    variables = model_variables(model)
    sections = {
        f"{PREFIX}{name.upper()}"
        for name, info in model.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    }
    known = set(variables) | set(OTHER_VARIABLES) | sections
    readable = known | {f"{name}_FILE" for name in variables}
    problems = []
    for raw in sorted(environ):
        name = raw.upper()
        if not name.startswith(PREFIX) or name in readable:
            continue
        close = difflib.get_close_matches(name.removesuffix("_FILE"), sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else "; see docs/configuration.md"
        problems.append(f"{raw} is not a known setting{hint}")
    return problems


def expected_form(annotation: Any) -> str:
    """How a value for this annotation is written in an environment variable."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return expected_form(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return expected_form(options[0]) if len(options) == 1 else " or ".join(expected_form(a) for a in options)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    if origin is list:
        return "a comma-separated list"
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return "a number"
    if annotation is Path:
        return "a file path"
    if annotation is SecretStr:
        return "a secret (or PRIVACY_<NAME>_FILE naming a file that holds it)"
    return "a string"


def _variable(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if isinstance(p, str)][:2]
    return PREFIX + NESTED.join(p.upper() for p in parts) if parts else "the settings"


def describe_validation(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """Each failed value as 'PRIVACY_X: what is wrong; expected <form>' (never the value itself)."""
    variables = model_variables(model)
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = _variable(error["loc"])
        info = variables.get(name)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problems.append(f"{name} is not a known setting")
            continue
        expected = f"; expected {expected_form(info.annotation)}" if info is not None else ""
        if error["type"] == "literal_error":
            expected = ""  # pydantic's message already lists the allowed values
        problems.append(f"{name}: {message}{expected}")
    return problems


def keys_url_problem(url: str) -> str | None:
    """A PRIVACY_KEYS URL whose provider cannot exist is a start-up error, not a 500 at the first checkout."""
    if not url.startswith(KEY_SCHEMES):
        scheme = url.split(":", 1)[0] if ":" in url else ""
        known = ", ".join(KEY_SCHEMES)
        what = f"the scheme {scheme!r} is not a key provider" if scheme else "it is not a URL"
        return f"PRIVACY_KEYS: {what}; expected one of {known} (docs/encryption.md)"
    if url.startswith("local:"):
        parts = urlsplit(url)
        if parts.netloc or not parts.path.startswith("/") or parts.query:
            return "PRIVACY_KEYS: expected local:///absolute/path/keyring.json"
    elif url.startswith("vault+"):
        parts = urlsplit(url)
        if not parts.hostname or len([s for s in parts.path.split("/") if s]) < 2:
            return "PRIVACY_KEYS: expected vault+https://host:8200/<transit mount>/<key name>"
    elif not url.removeprefix("awskms://").partition("?")[0]:
        return "PRIVACY_KEYS: expected awskms://<key-id-or-arn>?region=<region>"
    return None


def production_problems(settings: Any, *, workers: int = 1) -> list[str]:
    """Development defaults PRIVACY_ENV=production refuses (`settings` is a Settings; no import: no cycle)."""
    problems = []
    generated = {
        "PRIVACY_PSEUDONYM_SECRET": settings.pseudonym_secret,
        "PRIVACY_CONSENT__COOKIE_SECRET": settings.consent.cookie_secret,
        "PRIVACY_CONSENT__SIGNING_KEY_FILE": settings.consent.signing_key_file,
        "PRIVACY_AUDIT__SIGNING_KEY_FILE": settings.audit.signing_key_file,
        "PRIVACY_AUDIT__SIDE_RECORD_KEY": settings.audit.side_record_key,
        "PRIVACY_AUDIT__LOGIN_GUARD_KEY": settings.audit.login_guard_key,
    }
    for name, value in generated.items():
        if value is None:
            problems.append(f"{name} is unset: production does not use a key file generated in PRIVACY_DATA_DIR")
    if settings.keys is None or settings.keys.startswith("local:"):
        problems.append("PRIVACY_KEYS: production needs Vault Transit or AWS KMS, not a local keyring file")
    if workers > 1 and settings.database_url.startswith("sqlite"):
        problems.append(f"PRIVACY_DATABASE_URL: SQLite serves one process; {workers} workers need PostgreSQL")
    if not settings.consent.secure_cookie:
        problems.append("PRIVACY_CONSENT__SECURE_COOKIE=false: production cookies must be Secure")
    for cidr in settings.trusted_proxies:
        if ipaddress.ip_network(cidr, strict=False).prefixlen == 0:
            problems.append(
                f"PRIVACY_TRUSTED_PROXIES: {cidr} believes forwarded headers from anyone; list your proxies"
            )
    return problems
