"""One settings object, read from the environment. Every variable is documented in README.md."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///chaosbot-data/chaosbot.db"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False)

    # repr=False: these URLs may carry passwords, and settings objects end up in logs and tracebacks.
    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias=_env("DATABASE_URL"), repr=False)
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"), repr=False)
    # PostgreSQL connections each process keeps open (as many more open under a burst): replicas x 2 x this
    # must stay under the server's max_connections (100 by default).
    db_pool_size: int = Field(10, ge=1, le=100, validation_alias=_env("CHAOSBOT_DB_POOL_SIZE"))
    catalogue_path: Path | None = Field(None, validation_alias=_env("CHAOSBOT_CATALOGUE"))
    policy_path: Path | None = Field(None, validation_alias=_env("CHAOSBOT_POLICY"))
    channel: str = Field("#reliability", validation_alias=_env("CHAOSBOT_CHANNEL"))
    timezone: str = Field("Australia/Sydney", validation_alias=_env("CHAOSBOT_TIMEZONE"))
    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("SLACK_API_URL"))
    # How long a snapshot of a user group's members is used before it is read from Slack again.
    role_cache_seconds: float = Field(60.0, gt=0, le=3600, validation_alias=_env("CHAOSBOT_ROLE_CACHE_SECONDS"))
    port: int = Field(3000, ge=1, le=65535, validation_alias=_env("PORT"))
    # Where `serve` listens: every interface by default (right in a container); 127.0.0.1 for a laptop or tests.
    bind_address: str = Field("0.0.0.0", min_length=1, validation_alias=_env("CHAOSBOT_BIND_ADDRESS"))
    # Records the database cannot take (an outage) wait here, fsynced, until they are replayed into it.
    spool_dir: Path = Field(Path("chaosbot-data/spool"), validation_alias=_env("CHAOSBOT_SPOOL_DIR"))
    # How long a shutting-down process waits for another replica to adopt each run before reverting it.
    handover_seconds: float = Field(12.0, ge=0, le=20, validation_alias=_env("CHAOSBOT_HANDOVER_SECONDS"))
    # A revert that failed is alerted again this often until someone presses "Acknowledge" (or it is reverted).
    alert_repeat_seconds: float = Field(120.0, ge=1, le=3600, validation_alias=_env("CHAOSBOT_ALERT_REPEAT_SECONDS"))
    # How often each background job runs. Production keeps these defaults; the tests' servers run them fast.
    # Scheduled notices and automatic starts are checked every tick.
    # Work after an ack waits until no Slack request has been answered for this long (bot/pools.py).
    quiet_gap_seconds: float = Field(0.02, ge=0, le=1, validation_alias=_env("CHAOSBOT_QUIET_GAP_SECONDS"))
    # What Slack could not take is sent again after this, doubling up to 30 s (bot/interface/outbox.py).
    outbox_backoff_seconds: float = Field(1.0, ge=0.01, le=30, validation_alias=_env("CHAOSBOT_OUTBOX_BACKOFF_SECONDS"))
    # A Web API call that met a 5xx or a dropped connection is retried after this, then twice it (bot/slack/client.py).
    slack_retry_seconds: float = Field(0.5, ge=0.01, le=10, validation_alias=_env("CHAOSBOT_SLACK_RETRY_SECONDS"))
    tick_seconds: float = Field(5.0, ge=0.05, le=60, validation_alias=_env("CHAOSBOT_TICK_SECONDS"))
    # A scheduled firing that failed (Slack unreachable) is tried again after this, doubling up to 5 minutes.
    firing_retry_seconds: float = Field(10.0, ge=0.05, le=300, validation_alias=_env("CHAOSBOT_FIRING_RETRY_SECONDS"))
    # A start whose announcement Slack has not taken within this long is refused before anything is injected:
    # the kill switch lives in Slack, so no fault starts while nobody can press Abort.
    announce_timeout_seconds: float = Field(
        10.0, ge=0.1, le=120, validation_alias=_env("CHAOSBOT_ANNOUNCE_TIMEOUT_SECONDS")
    )
    calendar_poll_seconds: float = Field(
        30.0, ge=0.05, le=3600, validation_alias=_env("CHAOSBOT_CALENDAR_POLL_SECONDS")
    )
    retro_sweep_seconds: float = Field(15.0, ge=0.05, le=600, validation_alias=_env("CHAOSBOT_RETRO_SWEEP_SECONDS"))
    backlog_filing_seconds: float = Field(
        30.0, ge=0.05, le=3600, validation_alias=_env("CHAOSBOT_BACKLOG_FILING_SECONDS")
    )
    summary_check_seconds: float = Field(
        60.0, ge=0.05, le=3600, validation_alias=_env("CHAOSBOT_SUMMARY_CHECK_SECONDS")
    )
    dashboard_resend_seconds: float = Field(
        60.0, ge=0.05, le=3600, validation_alias=_env("CHAOSBOT_DASHBOARD_RESEND_SECONDS")
    )
    alarm_check_seconds: float = Field(15.0, ge=0.05, le=600, validation_alias=_env("CHAOSBOT_ALARM_CHECK_SECONDS"))
    # How often Alertmanager silences whose lift failed are tried again (each also ends by itself).
    silence_retry_seconds: float = Field(
        60.0, ge=0.05, le=3600, validation_alias=_env("CHAOSBOT_SILENCE_RETRY_SECONDS")
    )
    plan_expiry_check_seconds: float = Field(
        60.0, ge=0.05, le=3600, validation_alias=_env("CHAOSBOT_PLAN_EXPIRY_CHECK_SECONDS")
    )
    # A run's lease lapses this long after its controller's last renewal; then the dead man's switch (a sweep
    # on every replica) reverts its fault. Defaults: a dead controller's fault is off within 15 s.
    lease_seconds: float = Field(12.0, ge=0.3, le=300, validation_alias=_env("CHAOSBOT_LEASE_SECONDS"))
    lease_renew_seconds: float = Field(4.0, ge=0.1, le=100, validation_alias=_env("CHAOSBOT_LEASE_RENEW_SECONDS"))
    dead_mans_switch_seconds: float = Field(
        2.0, ge=0.05, le=60, validation_alias=_env("CHAOSBOT_DEAD_MANS_SWITCH_SECONDS")
    )
    # Each replica says it is alive this often; it counts as gone after three missed heartbeats.
    heartbeat_seconds: float = Field(5.0, ge=0.1, le=60, validation_alias=_env("CHAOSBOT_HEARTBEAT_SECONDS"))
    log_format: Literal["json", "text", "auto"] = Field("auto", validation_alias=_env("CHAOSBOT_LOG_FORMAT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias=_env("CHAOSBOT_LOG_LEVEL"))

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql+psycopg://", "postgresql://")):
            raise ValueError("expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; the bare scheme would make SQLAlchemy look for psycopg2.
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected redis://HOST:PORT/DB (or rediss://, unix://)")
        return value

    @field_validator("timezone")
    @classmethod
    def _real_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone name such as Australia/Sydney") from None
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("bind_address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        import ipaddress

        try:
            ipaddress.ip_address(value.strip("[]"))
        except ValueError:
            raise ValueError("expected an IP address such as 0.0.0.0, 127.0.0.1 or ::") from None
        return value

    @field_validator("channel")
    @classmethod
    def _channel_shape(cls, value: str) -> str:
        if not value or " " in value:
            raise ValueError("expected a channel id (C0123…) or a name like #reliability")
        return value

    @model_validator(mode="after")
    def _lease_outlives_missed_renewals(self) -> Settings:
        # Two missed renewals (a slow database, a GC pause) must not cost a healthy controller its run.
        if self.lease_renew_seconds * 3 > self.lease_seconds * (1 + 1e-9):  # 0.4 * 3 is 1.2000000000000002
            raise ValueError(
                f"CHAOSBOT_LEASE_RENEW_SECONDS ({self.lease_renew_seconds:g}) must be at most a third of "
                f"CHAOSBOT_LEASE_SECONDS ({self.lease_seconds:g})"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_FIELD_TO_ENV = {
    name: str(field.validation_alias.choices[0])  # type: ignore[union-attr]  # every field sets one alias
    for name, field in Settings.model_fields.items()
}


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; a bad value raises ``ConfigurationError`` naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # overrides are keyed by env name
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if not error["loc"]:  # a rule between settings: its message names the variables
                problems.append(message)
                continue
            loc = str(error["loc"][0])
            variable = _FIELD_TO_ENV.get(loc, loc)
            problems.append(f"{variable}: {message} (got {error['input']!r})")
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems)) from None
