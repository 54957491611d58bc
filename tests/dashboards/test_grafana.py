"""Grafana annotations of the fault window, against a local server implementing Grafana's annotations API
(``POST /api/annotations`` → ``{"message": "Annotation added", "id": n}``; ``PATCH /api/annotations/{id}``
→ ``{"message": "Annotation patched"}``; 401 without the right Bearer token), on both databases."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.dashboards.grafana import GrafanaAnnotations
from bot.dashboards.models import DashboardAnnotation
from bot.runs.core import RunCore
from storage.db import Database
from tests.adapters.servers import Call, FakeBackend, Reply, closed_port_url, not_found, running
from tests.core.helpers import running_run

TOKEN = "glsa_test_token"
START = datetime(2026, 12, 2, 3, 0, 5, tzinfo=UTC)
END = START + timedelta(minutes=5)


class FakeGrafana(FakeBackend):
    """Grafana's legacy annotations endpoints, in memory; ``hold`` delays the create's answer."""

    def __init__(self) -> None:
        super().__init__()
        self.annotations: dict[int, dict[str, Any]] = {}
        self.hold = threading.Event()
        self.hold.set()

    def route(self, call: Call) -> Reply:
        if call.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply(401, {"message": "Unauthorized"})
        if call.method == "POST" and call.path == "/api/annotations":
            self.lock.release()  # answer slowly without blocking other calls
            try:
                self.hold.wait(5)
            finally:
                self.lock.acquire()
            annotation_id = len(self.annotations) + 1
            self.annotations[annotation_id] = dict(call.body)
            return Reply(200, {"message": "Annotation added", "id": annotation_id})
        prefix = "/api/annotations/"
        if call.method == "PATCH" and call.path.startswith(prefix):
            annotation = self.annotations.get(int(call.path[len(prefix) :]))
            if annotation is None:
                return not_found("Annotation not found")
            annotation.update(call.body)
            return Reply(200, {"message": "Annotation patched"})
        return not_found()


@pytest.fixture
def grafana() -> Iterator[tuple[str, FakeGrafana]]:
    backend = FakeGrafana()
    with running(backend) as server:
        yield server.url, backend


@pytest.fixture
def make_marker(db: Database) -> Iterator[Callable[..., GrafanaAnnotations]]:
    made: list[GrafanaAnnotations] = []

    def make(url: str, token: str = TOKEN) -> GrafanaAnnotations:
        marker = GrafanaAnnotations(db, url, lambda: token)
        made.append(marker)
        return marker

    yield make
    for marker in made:
        marker.close()


def row(db: Database, run_id: int) -> DashboardAnnotation | None:
    with db.transaction() as session:
        found = session.get(DashboardAnnotation, run_id)
        if found is not None:
            session.expunge(found)
        return found


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def annotated(core: RunCore, marker: GrafanaAnnotations, at: datetime) -> tuple[int, GrafanaAnnotations]:
    """A running run whose fault window Grafana has annotated from ``at``."""
    run = running_run(core)
    marker.fault_started(run.id, label=run.label, experiment_id="CE-01", at=at, text="x").result(5)
    return run.id, marker


def test_created_at_inject_and_ended_at_revert(
    core: RunCore, grafana: tuple[str, FakeGrafana], make_marker: Callable[..., GrafanaAnnotations]
) -> None:
    url, backend = grafana
    run = running_run(core)
    marker = make_marker(url)

    marker.fault_started(run.id, label=run.label, experiment_id="CE-01", at=START, text="RUN-1 fault").result(5)
    marker.fault_ended(run.id, at=END).result(5)

    assert backend.annotations == {
        1: {"time": ms(START), "timeEnd": ms(END), "tags": ["chaosbot", run.label, "CE-01"], "text": "RUN-1 fault"}
    }
    stored = row(core.db, run.id)
    assert stored is not None and (stored.annotation_id, stored.ended_at, stored.end_sent) == (1, END, True)


def test_an_end_recorded_before_grafana_answered_the_create_still_ends_it(
    core: RunCore, grafana: tuple[str, FakeGrafana], make_marker: Callable[..., GrafanaAnnotations]
) -> None:
    url, backend = grafana
    run = running_run(core)
    starter, reverter = make_marker(url), make_marker(url)  # two replicas
    backend.hold.clear()

    created = starter.fault_started(run.id, label=run.label, experiment_id="CE-01", at=START, text="x")
    _wait_for(lambda: bool(backend.calls_to("POST")))
    reverter.fault_ended(run.id, at=END).result(5)  # the abort reached another replica first
    backend.hold.set()
    created.result(5)

    assert backend.annotations[1]["timeEnd"] == ms(END)
    stored = row(core.db, run.id)
    assert stored is not None and stored.end_sent


def test_an_end_grafana_did_not_take_is_sent_again_later(
    core: RunCore, grafana: tuple[str, FakeGrafana], make_marker: Callable[..., GrafanaAnnotations]
) -> None:
    url, backend = grafana
    ended = datetime.now(UTC)
    run_id, marker = annotated(core, make_marker(url), at=ended - timedelta(minutes=5))
    backend.fail_next(503)
    marker.fault_ended(run_id, at=ended).result(5)  # Grafana fails the PATCH at the revert
    assert "timeEnd" not in backend.annotations[1]
    backend.fail_next(503)

    marker.resend_ends().result(5)  # Grafana still failing: the end stays to send
    stored = row(core.db, run_id)
    assert "timeEnd" not in backend.annotations[1] and stored is not None and not stored.end_sent
    marker.resend_ends().result(5)  # Grafana back

    assert backend.annotations[1]["timeEnd"] == ms(ended)
    stored = row(core.db, run_id)
    assert stored is not None and stored.end_sent
    patches = len(backend.calls_to("PATCH"))
    marker.resend_ends().result(5)
    assert len(backend.calls_to("PATCH")) == patches, "an end already taken was sent again"


def test_an_annotation_deleted_in_grafana_is_not_ended_again_and_again(
    core: RunCore, grafana: tuple[str, FakeGrafana], make_marker: Callable[..., GrafanaAnnotations]
) -> None:
    url, backend = grafana
    ended = datetime.now(UTC)
    run_id, marker = annotated(core, make_marker(url), at=ended)
    backend.fail_next(404)

    marker.fault_ended(run_id, at=ended).result(5)
    marker.resend_ends().result(5)

    assert len(backend.calls_to("PATCH")) == 1
    stored = row(core.db, run_id)
    assert stored is not None and stored.end_sent


def test_grafana_down_is_logged_and_never_raises(
    core: RunCore, make_marker: Callable[..., GrafanaAnnotations], caplog: pytest.LogCaptureFixture
) -> None:
    run = running_run(core)
    marker = make_marker(closed_port_url())

    with caplog.at_level(logging.WARNING, logger="bot.dashboards.grafana"):
        marker.fault_started(run.id, label=run.label, experiment_id="CE-01", at=START, text="x").result(5)
        marker.fault_ended(run.id, at=END).result(5)

    assert "Grafana: failed annotating the start of RUN-1" in caplog.text
    stored = row(core.db, run.id)
    assert stored is not None and stored.annotation_id is None and stored.ended_at == END


def test_a_refused_token_is_logged(
    core: RunCore,
    grafana: tuple[str, FakeGrafana],
    make_marker: Callable[..., GrafanaAnnotations],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, backend = grafana
    run = running_run(core)

    with caplog.at_level(logging.WARNING, logger="bot.dashboards.grafana"):
        make_marker(url, token="wrong").fault_started(
            run.id, label=run.label, experiment_id="CE-01", at=START, text="x"
        ).result(5)

    assert backend.annotations == {} and "401" in caplog.text


def test_calls_return_at_once_while_grafana_is_slow(
    core: RunCore, grafana: tuple[str, FakeGrafana], make_marker: Callable[..., GrafanaAnnotations]
) -> None:
    url, backend = grafana
    run = running_run(core)
    marker = make_marker(url)
    backend.hold.clear()

    started = datetime.now(UTC)
    future = marker.fault_started(run.id, label=run.label, experiment_id="CE-01", at=START, text="x")
    marker.fault_ended(run.id, at=END)

    assert datetime.now(UTC) - started < timedelta(milliseconds=100) and not future.done()
    backend.hold.set()


def test_enabled_only_with_url_and_token(db: Database) -> None:
    assert GrafanaAnnotations.from_env(db, {"GRAFANA_URL": "http://g"}) is None
    assert GrafanaAnnotations.from_env(db, {"GRAFANA_TOKEN": "t"}) is None
    marker = GrafanaAnnotations.from_env(db, {"GRAFANA_URL": "http://g/", "GRAFANA_TOKEN": "t"})
    assert marker is not None and marker.base_url == "http://g"
    marker.close()


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while not condition():
        if datetime.now(UTC) > deadline:
            raise AssertionError("timed out")
        threading.Event().wait(0.01)
