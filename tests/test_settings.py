from __future__ import annotations

import re
from pathlib import Path

import pytest

from privacy_middleware.errors import ConfigError
from privacy_middleware.settings import Settings, env_variables

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_configuration_doc_lists_exactly_the_variables_the_model_reads() -> None:
    documented = set(re.findall(r"^\| `(PRIVACY_[A-Z_]+)` \|", DOC.read_text(), re.MULTILINE))
    assert documented == set(env_variables())


def test_environment_nesting_lists_and_file_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "jwt-secret"
    secret.write_text("s" * 40 + "\n")
    monkeypatch.setenv("PRIVACY_JWT__SECRET_FILE", str(secret))
    monkeypatch.setenv("PRIVACY_JWT__ALGORITHMS", "HS256, HS512")
    monkeypatch.setenv("PRIVACY_TRUSTED_PROXIES", "10.0.0.0/8,::1")
    monkeypatch.setenv("PRIVACY_MOUNT_PATH", "/gdpr/")
    settings = Settings()
    assert settings.jwt.secret is not None and settings.jwt.secret.get_secret_value() == "s" * 40
    assert settings.jwt.algorithms == ["HS256", "HS512"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "::1"]
    assert settings.mount_path == "/gdpr"
    assert "s" * 40 not in repr(settings)


def test_value_and_file_together_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("PRIVACY_PSEUDONYM_SECRET", "a")
    monkeypatch.setenv("PRIVACY_PSEUDONYM_SECRET_FILE", str(tmp_path / "f"))
    with pytest.raises(ConfigError):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PRIVACY_TRUSTED_PROXIES", "not-an-ip"),
        ("PRIVACY_JWT__ALGORITHMS", "none"),
        ("PRIVACY_MOUNT_PATH", "privacy"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        Settings()
