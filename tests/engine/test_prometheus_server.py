"""Prometheus stop conditions evaluated by a real Prometheus server scraping an exporter the test controls.

The lab's hand-written ``/prom`` endpoint (tests/engine/test_probes.py) stays for fast unit tests; here the
PromQL is parsed and evaluated by Prometheus itself, over series it really scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from bot.catalogue.models import StopCondition
from bot.engine.probes import BreachJudge, take_sample
from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import Lab, make_experiment, wait_for
from tests.engine.prometheus_server import Exporter, PrometheusServer, prometheus_binary
from tests.services import REQUIRE_SERVICES

ERROR_RATIO = "sum(lab_errors) / sum(lab_requests)"


@pytest.fixture(scope="session")
def exporter() -> Iterator[Exporter]:
    served = Exporter()
    yield served
    served.close()


@pytest.fixture(scope="session")
def prometheus(exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    binary = prometheus_binary()
    if binary is None:
        reason = "the prometheus binary is not installed (Debian: apt-get install prometheus)"
        if REQUIRE_SERVICES:
            pytest.fail(f"CHAOSBOT_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    server = PrometheusServer(binary, tmp_path_factory.mktemp("prometheus"), exporter)
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


@pytest.fixture
def metrics(exporter: Exporter, prometheus: PrometheusServer) -> Iterator[Exporter]:
    exporter.values = {"lab_errors": 2, "lab_requests": 100}
    prometheus.wait_value(ERROR_RATIO, 0.02)
    yield exporter
    exporter.values = {}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def condition(prometheus: PrometheusServer, query: str, **threshold: float) -> StopCondition:
    probe = {"kind": "prometheus", "url": prometheus.url, "query": query, "timeout_seconds": 2, **threshold}
    return StopCondition.model_validate({"name": "error ratio", "probe": probe})


def test_a_value_under_the_threshold_is_fine(
    metrics: Exporter, prometheus: PrometheusServer, client: httpx.Client
) -> None:
    sample = take_sample(condition(prometheus, ERROR_RATIO, max=0.05), client)
    assert sample.ok and not sample.error and sample.value == pytest.approx(0.02)


def test_a_value_over_the_threshold_is_a_breach(
    metrics: Exporter, prometheus: PrometheusServer, client: httpx.Client
) -> None:
    metrics.values["lab_errors"] = 9
    prometheus.wait_value(ERROR_RATIO, 0.09)
    sample = take_sample(condition(prometheus, ERROR_RATIO, max=0.05), client)
    assert not sample.ok and not sample.error and sample.detail == "value 0.09 > threshold 0.05"
    assert BreachJudge().breach(sample) == "stop condition error ratio: value 0.09 > threshold 0.05"


def test_a_value_under_the_minimum_is_a_breach(
    metrics: Exporter, prometheus: PrometheusServer, client: httpx.Client
) -> None:
    sample = take_sample(condition(prometheus, "sum(lab_requests)", min=500), client)
    assert not sample.ok and not sample.error and sample.detail == "value 100 < threshold 500 (min)"


def test_a_query_with_no_data_is_a_probe_error_that_breaches_the_second_time(
    metrics: Exporter, prometheus: PrometheusServer, client: httpx.Client
) -> None:
    missing = condition(prometheus, "sum(lab_never_exported)", max=1)
    judge = BreachJudge()
    first = take_sample(missing, client)
    assert first.error and not first.ok and first.detail == "probe error: the query returned no data"
    assert judge.breach(first) is None
    assert judge.breach(take_sample(missing, client)) == (
        "stop condition error ratio: probe failed 2 times in a row (probe error: the query returned no data)"
    )


def test_a_series_that_stops_being_exported_becomes_no_data(
    metrics: Exporter, prometheus: PrometheusServer, client: httpx.Client
) -> None:
    del metrics.values["lab_errors"]
    prometheus.wait_value(ERROR_RATIO, None)  # Prometheus marks the series stale at the next scrape
    sample = take_sample(condition(prometheus, ERROR_RATIO, max=0.05), client)
    assert sample.error and sample.detail == "probe error: the query returned no data"


def test_a_query_prometheus_refuses_is_a_probe_error(
    metrics: Exporter, prometheus: PrometheusServer, client: httpx.Client
) -> None:
    sample = take_sample(condition(prometheus, "sum(lab_errors", max=1), client)
    assert sample.error and sample.detail == "probe error: Prometheus answered HTTP 400"


@pytest.fixture
def lab_world(sqlite_db: Database, lab: Lab, make_world: Callable[..., World], prometheus: PrometheusServer) -> World:
    """CE-90 (the lab toggle) with one stop condition: Prometheus sees the lab's fault metric above 0.5."""
    probe = {"kind": "prometheus", "url": prometheus.url, "query": "max(lab_fault_active)", "max": 0.5}
    stop = {"name": "fault seen by prometheus", "probe": probe}
    world: World = make_world(sqlite_db, make_experiment(lab, max_duration=30, conditions=[stop]))
    return world


def test_a_breach_seen_by_prometheus_aborts_the_run(
    metrics: Exporter, prometheus: PrometheusServer, lab_world: World
) -> None:
    world = lab_world
    metrics.values["lab_fault_active"] = lambda: 1.0 if world.lab.fault_on else 0.0
    prometheus.wait_value("max(lab_fault_active)", 0.0)
    engine = world.engine()
    run_id = world.approved()

    engine.start(OWNER, run_id)

    wait_for(lambda: world.run(run_id).run_state.is_final, timeout=15, what="the automatic abort")
    run = world.run(run_id)
    assert run.run_state is RunState.ABORTED and run.ended_by == "chaosbot"
    assert run.end_reason == "stop condition fault seen by prometheus: value 1 > threshold 0.5"
    assert not world.lab.fault_on and len(world.lab.times("revert")) == 1
