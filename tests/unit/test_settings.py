"""Settings hygiene: one link-settings block, and production refusing development secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from leadpipe.ops.settings import OpsSettings
from leadpipe.runtime.settings import LinkSettings, ServiceSettings
from services.console.config import DEV_PASSWORD_HASH, ConsoleSettings
from services.ingest.config import IngestSettings, hash_api_key
from services.notifier.config import NotifierSettings
from services.nurture.config import NurtureSettings
from services.scoring.config import ScoringSettings

ROOT = Path(__file__).resolve().parents[2]
INFRA = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "REDIS_URL": "redis://127.0.0.1:6379/0"}
LINKING = (IngestSettings, NurtureSettings, NotifierSettings)
#: Production values for every secret setting any service has.
OWN_SECRETS = {
    "LEADPIPE_LINK_SECRET": "a-real-link-secret",
    "LEADPIPE_PRIVACY_SECRET": "a-real-privacy-secret",
    "INGEST_API_KEYS": json.dumps({"booth-app": hash_api_key("k")}),
    "INGEST_PRIVACY_API_KEYS": json.dumps({"crm": hash_api_key("p")}),
    "INGEST_WEBHOOK_SECRETS": '{"mailer": "whsec"}',
    "NOTIFIER_WEBHOOK_SECRET": "whsec",
    "NOTIFIER_SMS_AUTH_TOKEN": "tok",
    "CONSOLE_SESSION_SECRET": "a-real-session-secret",
    "CONSOLE_PASSWORD_HASHES": '{"*": "pbkdf2_sha256$200000$salt$abc"}',
    "DATABASE_URL": "postgresql://console@db/console",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for name in ("LEADPIPE_ENV", *OWN_SECRETS):
        monkeypatch.delenv(name, raising=False)
    for name, value in INFRA.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_the_link_settings_are_declared_once_and_mixed_into_every_service_that_links():
    for cls in LINKING:
        assert issubclass(cls, LinkSettings), cls.__name__
    for config in sorted((ROOT / "services").glob("*/config.py")):
        text = config.read_text()
        for field in LinkSettings.model_fields:
            assert f"{field}:" not in text, f"{config.relative_to(ROOT)} declares {field} again"


def test_one_environment_variable_sets_the_link_secret_of_every_service(env):
    env.setenv("LEADPIPE_LINK_SECRET", "one-secret")
    env.setenv("LEADPIPE_PUBLIC_URL", "https://leads.example.com")
    env.setenv("LINK_TTL_S", "3600")
    for cls in LINKING:
        settings = cls()
        assert settings.leadpipe_link_secret == "one-secret", cls.__name__
        assert settings.leadpipe_public_url == "https://leads.example.com", cls.__name__
        assert settings.link_ttl_s == 3600, cls.__name__


def test_a_link_lifetime_of_zero_is_refused_naming_the_setting(env):
    env.setenv("LINK_TTL_S", "0")
    with pytest.raises(ValidationError, match="link_ttl_s"):
        NurtureSettings()


def test_development_accepts_the_development_secrets(env):
    settings = IngestSettings()
    assert settings.leadpipe_env == "development"
    assert settings.leadpipe_link_secret == "dev-link-secret"


@pytest.mark.parametrize(
    "cls", [IngestSettings, NurtureSettings, NotifierSettings, ScoringSettings, ConsoleSettings, OpsSettings]
)
def test_production_starts_once_every_secret_is_the_deployments_own(env, cls: type[ServiceSettings]):
    for name, value in OWN_SECRETS.items():
        env.setenv(name, value)
    env.setenv("LEADPIPE_ENV", "production")
    assert cls().development_secrets() == []


def test_production_refuses_the_dev_link_secret_naming_the_setting(env):
    for name, value in OWN_SECRETS.items():
        env.setenv(name, value)
    env.delenv("LEADPIPE_LINK_SECRET")
    env.setenv("LEADPIPE_ENV", "production")
    for cls in LINKING:
        with pytest.raises(ValidationError) as err:
            cls()
        message = str(err.value)
        assert "LEADPIPE_ENV=production refuses development secrets: set your own LEADPIPE_LINK_SECRET " in message
        assert "PRIVACY" not in message, "only the settings still at a development value are named"


def test_production_names_every_development_secret_at_once_and_never_echoes_a_value(env):
    env.setenv("LEADPIPE_ENV", "production")
    env.setenv("KAFKA_SASL_PASSWORD", "hunter2-sasl")
    with pytest.raises(ValidationError) as err:
        IngestSettings()
    message = str(err.value)
    for name in ("INGEST_API_KEYS", "INGEST_PRIVACY_API_KEYS", "INGEST_WEBHOOK_SECRETS", "LEADPIPE_LINK_SECRET"):
        assert name in message
    assert "hunter2" not in message and "dev-link-secret" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEADPIPE_LINK_SECRET", "CHANGE-ME-to-32-random-bytes"),  # the k8s Secret's placeholder
        ("INGEST_WEBHOOK_SECRETS", '{"mailer": "dev-webhook-secret"}'),  # a dev value inside a map
        ("INGEST_API_KEYS", json.dumps({"dev-scanner": hash_api_key("x")})),  # the dev key's name
    ],
)
def test_production_refuses_placeholders_and_dev_values_inside_maps(env, name: str, value: str):
    for key, own in OWN_SECRETS.items():
        env.setenv(key, own)
    env.setenv(name, value)
    env.setenv("LEADPIPE_ENV", "production")
    with pytest.raises(ValidationError, match=f"set your own {name} "):
        IngestSettings()


def test_production_refuses_the_consoles_shipped_password_hash(env):
    for key, own in OWN_SECRETS.items():
        env.setenv(key, own)
    env.setenv("CONSOLE_PASSWORD_HASHES", json.dumps({"*": DEV_PASSWORD_HASH}))
    env.setenv("LEADPIPE_ENV", "production")
    with pytest.raises(ValidationError, match="CONSOLE_PASSWORD_HASHES"):
        ConsoleSettings()


def test_an_unknown_environment_name_is_refused_naming_the_setting(env):
    env.setenv("LEADPIPE_ENV", "prod")
    with pytest.raises(ValidationError, match="leadpipe_env"):
        ScoringSettings()
