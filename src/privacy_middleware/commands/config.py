"""`privacy-middleware config check`: the effective configuration, secrets redacted, and every finding."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ..settings_check import PREFIX, SettingsError, production_problems
from .base import ExitCode, Output


def _redacted(name: str, value: Any) -> Any:
    from ..store.database import redact_url

    if isinstance(value, SecretStr):
        return "<set>"
    if isinstance(value, list):
        return [_redacted(name, item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and name.endswith("_URL") and "://" in value and "@" in value:
        return redact_url(value)
    return value


def effective_settings(settings: Any) -> dict[str, Any]:
    """Every variable's effective value by name; secrets only say whether they are set."""
    from pydantic import BaseModel

    values: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            for sub in type(value).model_fields:
                variable = f"{PREFIX}{name.upper()}__{sub.upper()}"
                values[variable] = _redacted(variable, getattr(value, sub))
        else:
            variable = f"{PREFIX}{name.upper()}"
            values[variable] = _redacted(variable, value)
    return values


def cmd_config_check(args: argparse.Namespace) -> int:
    from ..policy.load import PolicyError, load_policy
    from ..settings import Settings

    out = Output.of(args)
    findings: list[str] = []
    notes: list[str] = []
    values: dict[str, Any] = {}
    try:
        settings = Settings()
    except SettingsError as exc:
        findings.extend(exc.problems)
    else:
        values = effective_settings(settings)
        try:
            load_policy(settings.policy_file)
        except PolicyError as exc:
            findings.extend(f"PRIVACY_POLICY_FILE {issue}" for issue in exc.issues)
        except OSError as exc:
            findings.append(f"PRIVACY_POLICY_FILE: cannot read {settings.policy_file} ({exc.strerror})")
        if settings.env != "production":
            notes.extend(f"production would refuse: {p}" for p in production_problems(settings, workers=1))
    lines = [f"{name}={value}" for name, value in values.items()]
    lines += [f"note: {note}" for note in notes]
    lines += [f"finding: {finding}" for finding in findings]
    lines.append(f"{len(findings)} finding(s)" if findings else "configuration OK")
    out.result({"ok": not findings, "settings": values, "findings": findings, "notes": notes}, lines)
    return ExitCode.FINDING if findings else ExitCode.OK


def register(subparsers: Any) -> None:
    config = subparsers.add_parser("config", help="the runtime configuration (PRIVACY_*)").add_subparsers(
        dest="config_command", required=True
    )
    check = config.add_parser(
        "check", help="print the effective configuration (secrets redacted) and its findings; exit 1 on any"
    )
    check.set_defaults(func=cmd_config_check)
