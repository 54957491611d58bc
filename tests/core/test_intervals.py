"""Every interval of the background work is a setting: production keeps its defaults, tests run them fast."""

from __future__ import annotations

import io
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.console.shell import ConsoleSurface
from bot.engine.leases import LeaseKeeper
from bot.errors import ConfigurationError
from bot.runtime import build_runtime
from bot.settings import load_settings

INTERVALS = {  # variable: the production default
    "CHAOSBOT_TICK_SECONDS": 5.0,
    "CHAOSBOT_FIRING_RETRY_SECONDS": 10.0,
    "CHAOSBOT_CALENDAR_POLL_SECONDS": 30.0,
    "CHAOSBOT_RETRO_SWEEP_SECONDS": 15.0,
    "CHAOSBOT_BACKLOG_FILING_SECONDS": 30.0,
    "CHAOSBOT_SUMMARY_CHECK_SECONDS": 60.0,
    "CHAOSBOT_DASHBOARD_RESEND_SECONDS": 60.0,
    "CHAOSBOT_ALARM_CHECK_SECONDS": 15.0,
    "CHAOSBOT_SILENCE_RETRY_SECONDS": 60.0,
    "CHAOSBOT_PLAN_EXPIRY_CHECK_SECONDS": 60.0,
    "CHAOSBOT_LEASE_SECONDS": 12.0,
    "CHAOSBOT_LEASE_RENEW_SECONDS": 4.0,
    "CHAOSBOT_DEAD_MANS_SWITCH_SECONDS": 2.0,
    "CHAOSBOT_HEARTBEAT_SECONDS": 5.0,
    "CHAOSBOT_HANDOVER_SECONDS": 12.0,
    "CHAOSBOT_QUIET_GAP_SECONDS": 0.02,
    "CHAOSBOT_OUTBOX_BACKOFF_SECONDS": 1.0,
    "CHAOSBOT_SLACK_RETRY_SECONDS": 0.5,
}


@pytest.fixture(autouse=True)
def production_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in INTERVALS:
        monkeypatch.delenv(name, raising=False)


def test_the_defaults_are_the_production_intervals() -> None:
    settings = load_settings()

    read = {name: getattr(settings, field) for field, name in _fields().items()}
    assert read == INTERVALS


def test_a_dead_controllers_fault_is_off_within_15_seconds_by_default() -> None:
    """The lease lapses, the next sweep reverts it, a second to spare: README's promise holds on the defaults."""
    settings = load_settings()

    assert settings.lease_seconds + settings.dead_mans_switch_seconds + 1 <= 15
    assert settings.lease_renew_seconds * 3 <= settings.lease_seconds  # two missed renewals are tolerated


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHAOSBOT_TICK_SECONDS", "0"),
        ("CHAOSBOT_TICK_SECONDS", "61"),
        ("CHAOSBOT_RETRO_SWEEP_SECONDS", "-1"),
        ("CHAOSBOT_ALARM_CHECK_SECONDS", "soon"),
        ("CHAOSBOT_LEASE_SECONDS", "0.1"),
        ("CHAOSBOT_DEAD_MANS_SWITCH_SECONDS", "0"),
        ("CHAOSBOT_HEARTBEAT_SECONDS", "3601"),
    ],
)
def test_an_interval_out_of_bounds_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as caught:
        load_settings()

    assert variable in str(caught.value) and repr(value) in str(caught.value)


def test_a_renewal_longer_than_a_third_of_the_lease_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSBOT_LEASE_SECONDS", "6")
    monkeypatch.setenv("CHAOSBOT_LEASE_RENEW_SECONDS", "3")

    with pytest.raises(ConfigurationError) as caught:
        load_settings()

    assert "CHAOSBOT_LEASE_RENEW_SECONDS (3)" in str(caught.value) and "CHAOSBOT_LEASE_SECONDS (6)" in str(caught.value)


def test_the_runtime_runs_each_job_at_its_setting(sqlite_template: Path, tmp_path: Path) -> None:
    path = tmp_path / "chaosbot.db"
    shutil.copy(sqlite_template, path)
    fast = {name: default / 10 for name, default in INTERVALS.items()}
    settings = load_settings(DATABASE_URL=f"sqlite:///{path}", CHAOSBOT_SPOOL_DIR=str(tmp_path / "spool"), **fast)
    runtime = build_runtime(settings, ConsoleSurface(io.StringIO(), settings.zone))
    try:
        runtime.start_jobs()
        assert runtime.scheduler is not None
        every = {job.id: job.trigger.interval.total_seconds() for job in runtime.scheduler.get_jobs()}
    finally:
        runtime.close()

    assert every == {
        "replica-heartbeat": 0.5,
        "dead-mans-switch": 0.2,
        "expire-plans": 6.0,
        "forget-deliveries": 600.0,  # housekeeping: nothing waits for it
        "retrospective-sweep": 1.5,
        "file-action-items": 3.0,
        "post-summaries": 6.0,
        "dashboard-ends": 6.0,
        "scheduled-firings": 0.5,
        "freeze-calendars": 3.0,
        "revert-alarms": 1.5,
        "silence-lifts": 6.0,
    }
    assert runtime.engine.replica_ttl == timedelta(seconds=1.5)  # three heartbeats


class CountingCoordination:
    def __init__(self) -> None:
        self.renewals = 0
        self.renewed = threading.Event()

    def renew(self, run_id: int, holder: str, ttl: timedelta) -> bool:
        self.renewals += 1
        if self.renewals >= 3:
            self.renewed.set()
        return True


def test_leases_are_renewed_at_the_renewal_interval_not_a_third_of_the_lease() -> None:
    coordination = CountingCoordination()
    keeper = LeaseKeeper(
        coordination,  # type: ignore[arg-type]  # only renew is called
        "me",
        timedelta(seconds=30),
        on_lost=lambda run_id: None,
        every=timedelta(milliseconds=50),
    )
    started = time.monotonic()
    keeper.track(1)
    try:
        assert coordination.renewed.wait(5)
    finally:
        keeper.close()
    assert time.monotonic() - started < 5  # a third of the lease would be 10 s for the first renewal


def _fields() -> dict[str, str]:
    from bot.settings import _FIELD_TO_ENV

    return {field: name for field, name in _FIELD_TO_ENV.items() if name in INTERVALS}
