"""Run silences against a real Alertmanager: created with the fault, expired with the revert, exactly once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.alerting.alertmanager import Alertmanager
from bot.alerting.silences import MARGIN, RunSilences, SilenceError
from bot.catalogue.models import AlertsProbe, Experiment, Silence, StopCondition
from bot.catalogue.service import load_catalogue
from bot.catalogue.thresholds import threshold_text
from bot.engine.probes import take_sample
from storage.db import Database
from tests.alerting.alertmanager_server import AlertmanagerServer
from tests.schedule.factories import add_run

LINK = "https://slack.example/archives/C0/p1"


def experiment(*silences: dict[str, str]) -> Experiment:
    base = next(e for e in load_catalogue().experiments if e.id == "CE-01")
    return base.model_copy(update={"silences": [Silence.model_validate(s) for s in silences]})


def closed_port() -> str:
    return "http://127.0.0.1:9"


def state_of(server: AlertmanagerServer, silence_id: str) -> str:
    [found] = [s for s in server.silences() if s["id"] == silence_id]
    return str(found["status"]["state"])


@pytest.fixture
def silences(db: Database, alertmanager: AlertmanagerServer) -> RunSilences:
    return RunSilences(db, Alertmanager(alertmanager.url))


def test_the_catalogue_reads_silences_as_written() -> None:
    spec = Silence.model_validate({"alertname": "ShareLinkLatencyHigh", "env": "staging", "comment": "expected"})
    assert spec.matchers == {"alertname": "ShareLinkLatencyHigh", "env": "staging"} and spec.comment == "expected"
    with pytest.raises(ValueError, match="label name"):
        Silence.model_validate({"not a label": "x"})


def test_a_run_silences_its_expected_alerts_and_lifts_them_once(
    db: Database, silences: RunSilences, alertmanager: AlertmanagerServer
) -> None:
    run = add_run(db, planned_start=datetime.now(UTC))
    latest_end = datetime.now(UTC) + timedelta(minutes=10)
    spec = experiment({"alertname": "ShareLinkLatencyHigh", "env": "staging", "comment": "latency rises by design"})
    assert silences.preflight(spec) is None
    [silence_id] = silences.silence(run.id, label=f"RUN-{run.id}", experiment=spec, latest_end=latest_end, link=LINK)

    [made] = [s for s in alertmanager.silences() if s["id"] == silence_id]
    assert made["status"]["state"] == "active" and made["createdBy"] == "chaosbot"
    assert f"RUN-{run.id}" in made["comment"] and LINK in made["comment"] and "latency rises" in made["comment"]
    assert {m["name"]: m["value"] for m in made["matchers"]} == {"alertname": "ShareLinkLatencyHigh", "env": "staging"}
    ends = datetime.fromisoformat(made["endsAt"].replace("Z", "+00:00"))
    assert abs(ends - (latest_end + MARGIN)) < timedelta(seconds=1)  # it lifts by itself if every replica dies

    [lifted] = silences.lift(run.id)
    assert lifted.ok and lifted.silence_id == silence_id
    assert state_of(alertmanager, silence_id) == "expired"
    assert silences.lift(run.id) == []  # exactly once: a second revert (another replica) finds nothing to do
    [row] = silences.of_run(run.id)
    assert row.expired_at is not None and row.attempts == 0


def test_without_an_alertmanager_the_preflight_refuses_and_nothing_is_injected(db: Database) -> None:
    spec = experiment({"alertname": "X"})
    assert "names no Alertmanager" in str(RunSilences(db, None).preflight(spec))
    down = RunSilences(db, Alertmanager(closed_port()))
    reason = down.preflight(spec)
    assert reason is not None and "could not connect" in reason
    run = add_run(db, planned_start=datetime.now(UTC))
    with pytest.raises(SilenceError, match="alertname=X"):
        down.silence(run.id, label="RUN-1", experiment=spec, latest_end=datetime.now(UTC), link=LINK)
    assert down.of_run(run.id) == []
    assert RunSilences(db, None).preflight(experiment()) is None  # no silences listed: nothing to check


def test_a_silence_that_cannot_be_expired_is_retried_until_it_is(
    db: Database, alertmanager: AlertmanagerServer
) -> None:
    working = RunSilences(db, Alertmanager(alertmanager.url))
    run = add_run(db, planned_start=datetime.now(UTC))
    spec = experiment({"alertname": "CacheDown"})
    later = datetime.now(UTC) + timedelta(minutes=10)
    [silence_id] = working.silence(run.id, label="RUN-1", experiment=spec, latest_end=later, link=LINK)

    unreachable = RunSilences(db, Alertmanager(closed_port()))
    [failed] = unreachable.lift(run.id)
    assert not failed.ok and failed.error is not None
    [row] = working.of_run(run.id)
    assert row.expired_at is None and row.attempts == 1 and row.last_error
    assert state_of(alertmanager, silence_id) == "active"

    [retried] = working.retry_lifts()
    assert retried.ok and state_of(alertmanager, silence_id) == "expired"
    assert working.retry_lifts() == []


def test_a_silence_past_its_own_end_is_not_retried(db: Database) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    run = add_run(db, planned_start=past)
    clock_now = datetime.now(UTC) + timedelta(hours=1)
    silences = RunSilences(db, Alertmanager(closed_port()), clock=lambda: clock_now)
    from bot.alerting.models import RunSilence

    with db.transaction() as session:
        session.add(RunSilence(run_id=run.id, silence_id="gone", matchers={}, ends_at=past, attempts=0,
                               lift_requested_at=past))  # fmt: skip
    assert silences.retry_lifts() == []
    [row] = silences.of_run(run.id)
    assert row.expired_at == past


def test_the_alerts_probe_breaches_on_what_pages_but_not_on_what_the_run_silenced(
    db: Database, alertmanager: AlertmanagerServer
) -> None:
    team = f"portal-{uuid.uuid4().hex[:8]}"  # the server is shared by the module: its own alerts only
    condition = StopCondition(
        name="nothing pages", probe=AlertsProbe(kind="alerts", url=alertmanager.url, matchers={"team": team})
    )
    assert threshold_text(condition) == f"no alert firing with team={team}"
    with httpx.Client() as client:
        assert take_sample(condition, client).ok
        run = add_run(db, planned_start=datetime.now(UTC))
        RunSilences(db, Alertmanager(alertmanager.url)).silence(
            run.id,
            label="RUN-1",
            experiment=experiment({"alertname": "ShareLinkLatencyHigh", "team": team}),
            latest_end=datetime.now(UTC) + timedelta(minutes=5),
            link=LINK,
        )
        alertmanager.push(alertname="ShareLinkLatencyHigh", team=team, severity="page")
        expected = _settled(lambda: take_sample(condition, client))
        assert expected.ok, expected.detail  # the run's own silence hides the alert it is designed to fire
        alertmanager.push(alertname="CheckoutErrors", team=team, severity="page")
        sample = _settled(lambda: take_sample(condition, client), until=lambda s: not s.ok)
        assert not sample.ok and not sample.error and "CheckoutErrors" in sample.detail
        down = StopCondition(name="x", probe=AlertsProbe(kind="alerts", url=closed_port(), matchers={"a": "b"}))
        assert take_sample(down, client).error


def _settled(take, until=lambda s: True, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """Alertmanager applies silences and new alerts asynchronously: sample until the answer settles."""
    import time

    deadline = time.monotonic() + timeout
    sample = take()
    while not until(sample) and time.monotonic() < deadline:
        time.sleep(0.1)
        sample = take()
    time.sleep(0.2)
    return take() if until(sample) else sample
