"""An ``alerts`` stop condition against alerts a real Prometheus rule fires into a real Alertmanager.

Prometheus (Debian's ``prometheus``) scrapes an exporter whose metrics follow the lab's fault, evaluates two
rules every second (``for: 0s``) and sends what fires to Alertmanager (Debian's ``prometheus-alertmanager``),
as a team's monitoring does. Each test labels its metrics with a team of its own, so the module's servers are
shared without one test's alerts reaching another's stop condition.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.alerting.alertmanager import Alertmanager
from bot.alerting.silences import RunSilences
from bot.catalogue.models import Silence
from bot.runs.models import RunState
from storage.db import Database
from tests.alerting.alertmanager_server import AlertmanagerServer, running_alertmanager
from tests.engine.conftest import OWNER, World
from tests.engine.lab import Lab, make_experiment, wait_for
from tests.engine.prometheus_server import Exporter, PrometheusServer, prometheus_binary
from tests.services import REQUIRE_SERVICES
from tests.waiting import holds_for

RULES = """\
groups:
  - name: share-links
    interval: 1s
    rules:
      - alert: ShareLinkLatencyHigh
        expr: lab_share_link_latency_ms > 500
        for: 0s
        labels: {severity: page}
      - alert: CheckoutErrors
        expr: lab_checkout_errors > 0
        for: 0s
        labels: {severity: page}
"""


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    yield from running_alertmanager(tmp_path_factory)


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    served = Exporter()
    yield served
    served.close()


@pytest.fixture(scope="module")
def prometheus(
    exporter: Exporter, alertmanager: AlertmanagerServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    binary = prometheus_binary()
    if binary is None:
        reason = "the prometheus binary is not installed (Debian: apt-get install prometheus)"
        if REQUIRE_SERVICES:
            pytest.fail(f"CHAOSBOT_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    workdir = Path(tmp_path_factory.mktemp("prometheus-rules"))
    server = PrometheusServer(binary, workdir, exporter, rules=RULES, alertmanager=f"127.0.0.1:{alertmanager.port}")
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


@pytest.fixture
def team(exporter: Exporter) -> Iterator[str]:
    """This test's team label: its metrics, hence its alerts, carry it."""
    name = f"portal-{uuid.uuid4().hex[:8]}"
    yield name
    for metric in [m for m in exporter.values if name in m]:
        del exporter.values[metric]


def pages_for(alertmanager: AlertmanagerServer, team: str) -> dict[str, Any]:
    probe = {"kind": "alerts", "url": alertmanager.url, "matchers": {"severity": "page", "team": team}}
    return {"name": "nothing pages", "probe": probe}


def alerts_of(alertmanager: AlertmanagerServer, team: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{alertmanager.url}/api/v2/alerts", params={"filter": f'team="{team}"'}, timeout=5)
    alerts = answer.json()
    assert isinstance(alerts, list)
    return alerts


def follows_fault(exporter: Exporter, lab: Lab, metric: str, team: str, *, on: float) -> None:
    exporter.values[f'{metric}{{team="{team}"}}'] = lambda: on if lab.fault_on else 0.0


def test_an_alert_fired_by_a_prometheus_rule_aborts_the_run_and_its_recovery_is_measured(
    sqlite_db: Database,
    lab: Lab,
    make_world: Any,
    exporter: Exporter,
    prometheus: PrometheusServer,
    alertmanager: AlertmanagerServer,
    team: str,
) -> None:
    follows_fault(exporter, lab, "lab_checkout_errors", team, on=3.0)
    prometheus.wait_value(f'lab_checkout_errors{{team="{team}"}}', 0.0)
    world: World = make_world(
        sqlite_db, make_experiment(lab, max_duration=30, conditions=[pages_for(alertmanager, team)])
    )
    engine = world.engine()
    run_id = world.approved()

    engine.start(OWNER, run_id)  # nothing pages yet: the steady state holds

    wait_for(lambda: world.run(run_id).run_state.is_final, timeout=15, what="the abort on the rule's alert")
    run = world.run(run_id)
    assert run.run_state is RunState.ABORTED and run.ended_by == "chaosbot"
    assert (run.end_reason or "").startswith("stop condition nothing pages:") and "CheckoutErrors" in str(
        run.end_reason
    )
    assert not world.lab.fault_on and len(world.lab.times("revert")) == 1
    # The revert clears the metric, Prometheus resolves the alert, and the probe sees the steady state again.
    wait_for(lambda: f"RUN-{run_id} recovered" in world.events(run_id), timeout=15, what="the recovery measured")


def test_the_runs_own_silence_keeps_the_alert_it_is_expected_to_fire_from_aborting_it(
    sqlite_db: Database,
    lab: Lab,
    make_world: Any,
    exporter: Exporter,
    prometheus: PrometheusServer,
    alertmanager: AlertmanagerServer,
    team: str,
) -> None:
    follows_fault(exporter, lab, "lab_share_link_latency_ms", team, on=900.0)
    prometheus.wait_value(f'lab_share_link_latency_ms{{team="{team}"}}', 0.0)
    experiment = make_experiment(lab, max_duration=30, conditions=[pages_for(alertmanager, team)])
    expected = Silence(matchers={"alertname": "ShareLinkLatencyHigh", "team": team})
    world: World = make_world(sqlite_db, experiment.model_copy(update={"silences": [expected]}))
    silences = RunSilences(sqlite_db, Alertmanager(alertmanager.url))
    engine = world.engine(silences=silences)
    run_id = world.approved()

    engine.start(OWNER, run_id)

    [silence] = silences.of_run(run_id)
    [alert] = wait_for(lambda: alerts_of(alertmanager, team), timeout=15, what="the rule's alert in Alertmanager")
    assert alert["labels"]["alertname"] == "ShareLinkLatencyHigh" and alert["labels"]["severity"] == "page"
    assert alert["status"]["state"] == "suppressed" and alert["status"]["silencedBy"] == [silence.silence_id]
    holds_for(lambda: world.run(run_id).run_state is RunState.RUNNING, 2.5, what="the run going on")  # 2+ probes
    engine.abort(OWNER, run_id, "seen enough")
    run = world.run(run_id)
    assert run.run_state is RunState.ABORTED and run.ended_by == OWNER
    silences.close()
