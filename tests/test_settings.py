from __future__ import annotations

import re
from pathlib import Path

import pytest

from privacy_middleware.errors import ConfigError
from privacy_middleware.settings import Settings, env_variables
from privacy_middleware.settings_check import OTHER_VARIABLES, SettingsError

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_configuration_doc_lists_exactly_the_variables_the_model_reads() -> None:
    documented = set(re.findall(r"^\| `(PRIVACY_[A-Z_]+)` \|", DOC.read_text(), re.MULTILINE))
    assert documented == set(env_variables()) | set(OTHER_VARIABLES)


def test_every_privacy_variable_named_in_the_code_is_documented() -> None:
    source = Path(__file__).resolve().parents[1] / "src"
    named = set()
    for file in source.rglob("*.py"):
        named |= set(re.findall(r"\b(PRIVACY_[A-Z][A-Z0-9_]*[A-Z0-9])\b", file.read_text()))
    documented = set(env_variables()) | set(OTHER_VARIABLES)
    generic = {"PRIVACY_X", "PRIVACY_X_FILE"}
    missing = {n for n in named - generic if n not in documented and n.removesuffix("_FILE") not in documented}
    assert not missing


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


def test_unknown_variable_names_the_closest_known_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVACY_LOG_LEVL", "DEBUG")
    with pytest.raises(ConfigError, match="PRIVACY_LOG_LEVL is not a known setting; did you mean PRIVACY_LOG_LEVEL"):
        Settings()


def test_every_problem_is_reported_at_once_by_variable_name_without_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVACY_AUDIT__QUEUE_SIZ", "5")
    monkeypatch.setenv("PRIVACY_JWT__LEEWAY_SECONDS", "soon-secret-ish")
    monkeypatch.setenv("PRIVACY_CONSENT__SECURE_COOKIE", "perhaps")
    monkeypatch.setenv("PRIVACY_KEYS", "s3://bucket/keys")
    with pytest.raises(SettingsError) as caught:
        Settings()
    problems = caught.value.problems
    assert len(problems) == 4
    text = str(caught.value)
    assert "PRIVACY_AUDIT__QUEUE_SIZE" in text
    assert "PRIVACY_JWT__LEEWAY_SECONDS" in text and "whole number" in text
    assert "PRIVACY_CONSENT__SECURE_COOKIE" in text and "true or false" in text
    assert "PRIVACY_KEYS" in text and "'s3' is not a key provider" in text
    assert "soon-secret-ish" not in text and "perhaps" not in text


@pytest.mark.parametrize("url", ["s3://x", "local://relative/keyring.json", "vault+https://vault/onlykey", "awskms://"])
def test_a_bad_key_provider_url_fails_at_start_not_at_the_first_checkout(url: str, tmp_path: Path) -> None:
    from starlette.applications import Starlette

    from privacy_middleware import PrivacyMiddleware

    with pytest.raises(ConfigError, match="PRIVACY_KEYS"):
        PrivacyMiddleware(Starlette(), Settings(keys=url, data_dir=tmp_path))


def test_production_refuses_development_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRIVACY_ENV", "production")
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    with pytest.raises(SettingsError) as caught:
        Settings(consent={"secure_cookie": False}, trusted_proxies=["0.0.0.0/0"])
    text = str(caught.value)
    for expected in (
        "PRIVACY_PSEUDONYM_SECRET",
        "PRIVACY_AUDIT__SIGNING_KEY_FILE",
        "PRIVACY_KEYS",
        "4 workers need PostgreSQL",
        "PRIVACY_CONSENT__SECURE_COOKIE",
        "PRIVACY_TRUSTED_PROXIES",
    ):
        assert expected in text
    secret = "s" * 40
    settings = Settings(
        pseudonym_secret=secret,
        keys="vault+https://vault.internal:8200/transit/shop",
        database_url="postgresql://shop@db/privacy",
        consent={"cookie_secret": secret, "signing_key_file": tmp_path / "c.pem"},
        audit={
            "signing_key_file": tmp_path / "a.pem",
            "side_record_key": secret,
            "login_guard_key": secret,
        },
    )
    assert settings.env == "production"


def test_platform_webhook_settings_come_from_the_platform_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each platform's settings are a model in `platforms/` named in one table; their variables keep
    the names PRIVACY_WEBHOOKS__<PLATFORM>_<FIELD>, and the receiver table names the same platforms."""
    from privacy_middleware.integrations.receivers import WEBHOOK_RECEIVERS
    from privacy_middleware.platforms import PLATFORM_SETTINGS
    from privacy_middleware.platforms.saleor import SaleorWebhookSettings
    from privacy_middleware.platforms.shopify import ShopifyWebhookSettings
    from privacy_middleware.settings_check import model_variables

    names = {n for n in model_variables(Settings) if n.startswith("PRIVACY_WEBHOOKS__")}
    assert names == {
        f"PRIVACY_WEBHOOKS__{platform.upper()}_{field.upper()}"
        for platform, model in PLATFORM_SETTINGS.items()
        for field in model.model_fields
    }
    assert {
        "PRIVACY_WEBHOOKS__SHOPIFY_SECRETS",
        "PRIVACY_WEBHOOKS__SHOPIFY_SHOPS",
        "PRIVACY_WEBHOOKS__WOOCOMMERCE_SECRETS",
        "PRIVACY_WEBHOOKS__SALEOR_API_URL",
        "PRIVACY_WEBHOOKS__SALEOR_SECRET",
    } <= names
    assert set(WEBHOOK_RECEIVERS) == set(PLATFORM_SETTINGS)

    monkeypatch.setenv("PRIVACY_WEBHOOKS__SHOPIFY_SECRETS", "new-secret, old-secret")
    monkeypatch.setenv("PRIVACY_WEBHOOKS__SHOPIFY_SHOPS", "tea.myshopify.com")
    monkeypatch.setenv("PRIVACY_WEBHOOKS__SALEOR_API_URL", "https://saleor.example/graphql/")
    hooks = Settings().webhooks
    shopify = hooks.platform(ShopifyWebhookSettings)
    assert [s.get_secret_value() for s in shopify.secrets] == ["new-secret", "old-secret"]
    assert shopify.shops == ["tea.myshopify.com"]
    assert hooks.platform(SaleorWebhookSettings).api_url == "https://saleor.example/graphql/"
    assert hooks.platform(SaleorWebhookSettings).secret is None
