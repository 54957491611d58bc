"""Settings come from the environment; every bad value names the variable, and secrets stay hidden."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.errors import ConfigurationError
from bot.settings import load_settings
from storage.db import Database
from tests.services import scratch_postgres_database

VARIABLES = [
    "DATABASE_URL",
    "REDIS_URL",
    "CHAOSBOT_CATALOGUE",
    "CHAOSBOT_POLICY",
    "CHAOSBOT_CHANNEL",
    "CHAOSBOT_TIMEZONE",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "PORT",
    "CHAOSBOT_LOG_FORMAT",
    "CHAOSBOT_LOG_LEVEL",
    "CHAOSBOT_DB_POOL_SIZE",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_embedded_sqlite_sydney_port_3000_and_reliability_channel() -> None:
    settings = load_settings()

    assert settings.database_url.startswith("sqlite:///")
    assert settings.timezone == "Australia/Sydney"
    assert str(settings.zone) == "Australia/Sydney"
    assert settings.port == 3000
    assert settings.channel == "#reliability"
    assert settings.redis_url is None
    assert settings.catalogue_path is None and settings.policy_path is None


def test_values_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("CHAOSBOT_TIMEZONE", "Europe/London")
    monkeypatch.setenv("CHAOSBOT_CHANNEL", "#chaos")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("CHAOSBOT_CATALOGUE", "/etc/chaosbot/experiments.yml")

    settings = load_settings()

    assert settings.port == 8080
    assert str(settings.zone) == "Europe/London"
    assert settings.channel == "#chaos"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert str(settings.catalogue_path) == "/etc/chaosbot/experiments.yml"


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("PORT", "abc", "integer"),
        ("PORT", "70000", "65535"),
        ("CHAOSBOT_TIMEZONE", "Mars/Base", "time zone"),
        ("DATABASE_URL", "mysql://x", "sqlite"),
        ("REDIS_URL", "http://x", "redis://"),
        ("SLACK_API_URL", "ftp://x", "http"),
        ("CHAOSBOT_DB_POOL_SIZE", "0", "greater than or equal to 1"),
    ],
)
def test_bad_value_raises_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as caught:
        load_settings()

    message = str(caught.value)
    line = next(line for line in message.splitlines() if variable in line)
    assert complaint in line
    assert repr(value) in line


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "abc")
    monkeypatch.setenv("REDIS_URL", "http://x")

    with pytest.raises(ConfigurationError) as caught:
        load_settings()

    assert "PORT" in str(caught.value) and "REDIS_URL" in str(caught.value)


def test_bare_postgresql_scheme_is_normalised_to_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://chaos@db.internal:5432/chaosbot")

    assert load_settings().database_url == "postgresql+psycopg://chaos@db.internal:5432/chaosbot"


def test_explicit_psycopg_url_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://chaos@db/chaosbot")

    assert load_settings().database_url == "postgresql+psycopg://chaos@db/chaosbot"


def test_slack_api_url_gets_a_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9999/api")

    assert load_settings().slack_api_url == "http://127.0.0.1:9999/api/"


def test_tokens_are_secret_and_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "SLACK_BOT_TOKEN": "xoxb-bot-token-123",
        "SLACK_SIGNING_SECRET": "signing-secret-456",
        "SLACK_APP_TOKEN": "xapp-app-token-789",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)

    settings = load_settings()

    assert isinstance(settings.slack_bot_token, SecretStr)
    assert isinstance(settings.slack_signing_secret, SecretStr)
    assert isinstance(settings.slack_app_token, SecretStr)
    assert settings.slack_bot_token.get_secret_value() == secrets["SLACK_BOT_TOKEN"]
    for value in secrets.values():
        assert value not in repr(settings)
        assert value not in str(settings)


def test_database_and_redis_passwords_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://chaos:db-password-1@db/chaosbot")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-password-2@cache:6379/0")

    text = repr(load_settings())

    assert "db-password-1" not in text
    assert "redis-password-2" not in text


def test_serve_binds_every_interface_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.slack.serve import _host

    monkeypatch.delenv("CHAOSBOT_BIND_ADDRESS", raising=False)
    assert load_settings().bind_address == "0.0.0.0"  # right in a container
    monkeypatch.setenv("CHAOSBOT_BIND_ADDRESS", "127.0.0.1")
    assert load_settings().bind_address == "127.0.0.1"
    assert _host("::1") == "[::1]" and _host("127.0.0.1") == "127.0.0.1"
    monkeypatch.setenv("CHAOSBOT_BIND_ADDRESS", "localhost; rm -rf /")
    with pytest.raises(ConfigurationError, match="CHAOSBOT_BIND_ADDRESS"):
        load_settings()


def test_a_process_keeps_the_pool_size_of_postgresql_connections_open_and_as_many_more_in_a_burst(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scratch_postgres_database() as url:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("CHAOSBOT_DB_POOL_SIZE", "2")
        settings = load_settings()
        engine = Database(settings.database_url, pool_size=settings.db_pool_size).engine
        try:
            burst = [engine.connect() for _ in range(4)]  # two kept open, two more for the burst
            assert engine.pool.checkedout() == 4
            for connection in burst:
                connection.close()
            assert engine.pool.checkedin() == 2  # what a burst opened beyond the pool is closed again
        finally:
            engine.dispose()
