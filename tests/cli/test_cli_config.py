"""`config check`: effective configuration with secrets redacted, findings, exit 1 on any."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from .conftest import DEMO_POLICY


def test_clean_configuration_exits_0_and_redacts_secrets(cli: Any, tmp_path: Path) -> None:
    env = tmp_path / "privacy.env"
    env.write_text(
        f"PRIVACY_POLICY_FILE={DEMO_POLICY}\n"
        "PRIVACY_PSEUDONYM_SECRET=pseudonym-secret-value-0123456789\n"
        "PRIVACY_DATABASE_URL=postgresql://shop:db-password-42@db.internal/privacy\n"
    )
    ran = cli("config", "check", "--env-file", str(env))
    assert ran.code == 0, ran.out
    assert "configuration OK" in ran.out
    assert "pseudonym-secret-value" not in ran.out and "db-password-42" not in ran.out
    document = orjson.loads(cli("config", "check", "--env-file", str(env), "--json").out)
    assert document["settings"]["PRIVACY_PSEUDONYM_SECRET"] == "<set>"
    assert "db-password-42" not in document["settings"]["PRIVACY_DATABASE_URL"]
    assert any("PRIVACY_KEYS" in note for note in document["notes"])  # what production would refuse


def test_findings_exit_1(cli: Any, tmp_path: Path) -> None:
    env = tmp_path / "privacy.env"
    env.write_text(f"PRIVACY_POLICY_FILE={tmp_path / 'missing.toml'}\nPRIVACY_JWT__AUDEINCE=shop\n")
    ran = cli("config", "check", "--env-file", str(env), "--json")
    assert ran.code == 1
    findings = orjson.loads(ran.out)["findings"]
    assert any("PRIVACY_JWT__AUDEINCE" in f and "PRIVACY_JWT__AUDIENCE" in f for f in findings)


def test_production_findings(cli: Any, tmp_path: Path) -> None:
    env = tmp_path / "privacy.env"
    env.write_text(f"PRIVACY_POLICY_FILE={DEMO_POLICY}\nPRIVACY_ENV=production\nPRIVACY_CONSENT__SECURE_COOKIE=false\n")
    ran = cli("config", "check", "--env-file", str(env))
    assert ran.code == 1
    for name in ("PRIVACY_KEYS", "PRIVACY_PSEUDONYM_SECRET", "PRIVACY_CONSENT__SECURE_COOKIE"):
        assert f"finding: {name}" in ran.out
