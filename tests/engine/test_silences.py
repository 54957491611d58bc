"""A run's expected alerts are silenced in a real Alertmanager with the fault, and lifted with its revert."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bot.alerting.alertmanager import Alertmanager
from bot.alerting.silences import RunSilences
from bot.catalogue.models import Silence
from bot.engine import PreflightFailed
from bot.runs.models import RunState
from storage.db import Database
from tests.alerting.alertmanager_server import AlertmanagerServer, running_alertmanager
from tests.engine.conftest import OWNER, World
from tests.engine.lab import Lab, make_experiment, wait_for

EXPECTED = {"alertname": "ShareLinkLatencyHigh", "env": "staging"}


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    yield from running_alertmanager(tmp_path_factory)


def silenced_world(db: Database, lab: Lab, make_world: Callable[..., World]) -> World:
    experiment = make_experiment(lab, max_duration=30, conditions=[])
    return make_world(db, experiment.model_copy(update={"silences": [Silence(matchers=EXPECTED)]}))


def state(server: AlertmanagerServer, silence_id: str) -> object:
    return next(s["status"] for s in server.silences() if s["id"] == silence_id)


def test_a_run_silences_its_expected_alerts_until_the_abort_reverts_it(
    db: Database, lab: Lab, make_world: Callable[..., World], alertmanager: AlertmanagerServer
) -> None:
    world = silenced_world(db, lab, make_world)
    silences = RunSilences(db, Alertmanager(alertmanager.url))
    engine = world.engine(silences=silences)
    run_id = world.approved()
    run = engine.start(OWNER, run_id)
    [made] = silences.of_run(run_id)
    [shown] = [s for s in alertmanager.silences() if s["id"] == made.silence_id]
    assert shown["status"] == {"state": "active"} and run.label in str(shown["comment"]) and lab.fault_on
    assert "silenced in Alertmanager" in world.events(run_id) and made.silence_id in world.events(run_id)

    engine.abort(OWNER, run_id, "enough")
    wait_for(lambda: state(alertmanager, made.silence_id) == {"state": "expired"}, what="the lift")
    assert world.run(run_id).run_state is RunState.ABORTED
    silences.close()


def test_an_alertmanager_that_cannot_silence_refuses_the_start_before_any_fault(
    db: Database, lab: Lab, make_world: Callable[..., World]
) -> None:
    world = silenced_world(db, lab, make_world)
    engine = world.engine(silences=RunSilences(db, Alertmanager("http://127.0.0.1:9")))
    run_id = world.approved()
    with pytest.raises(PreflightFailed, match="Alertmanager cannot create the run's silences"):
        engine.start(OWNER, run_id)
    assert lab.times("inject") == [] and world.run(run_id).run_state is RunState.APPROVED
