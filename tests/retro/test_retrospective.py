"""A retrospective for every way a run ends, built from what the run recorded, on both databases."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from bot.records.models import MeasurementPhase
from bot.retro.models import ActionItemLine, Ending, Retrospective, Verdict
from bot.retro.service import build
from bot.runs.core import RunCore
from bot.runs.models import RunState
from tests.conftest import Clock
from tests.retro import stories
from tests.retro.stories import APPROVER, CONDITION, OWNER, Story

ZONE = ZoneInfo("Australia/Sydney")
GRAFANA = {"GRAFANA_URL": "https://grafana.example", "LOGS_URL": "https://logs.example"}


def retro_of(story: Story, **options: object) -> Retrospective:
    return build(story.core.db, story.run_id, zone=ZONE, environ=GRAFANA, **options)  # type: ignore[arg-type]  # options are build's keywords


def kinds(retro: Retrospective) -> list[str]:
    return [entry.kind for entry in retro.timeline]


def test_held_run_says_held_with_recovery_within_the_rto(core: RunCore, clock: Clock) -> None:
    retro = retro_of(stories.held(core, clock))

    assert (retro.verdict, retro.ending) == (Verdict.HELD, Ending.COMPLETED)
    assert retro.recovery.met is True and retro.recovery.margin_seconds == pytest.approx(290.0)
    assert "within the RTO of 5m 00s, 4m 50s to spare" in retro.recovery.text
    assert kinds(retro) == [
        "planned",
        "approved",
        "approved",
        "approved",
        "started",
        "injected",
        "reverted",
        "recovered",
        "completed",
    ]
    assert retro.gaps == ()


def test_stats_per_phase_are_the_samples_percentiles(core: RunCore, clock: Clock) -> None:
    retro = retro_of(stories.held(core, clock))

    (condition,) = retro.conditions
    assert condition.name == CONDITION and condition.upper == 500 and condition.unit == "ms"
    baseline, fault, recovery = (condition.phases[p] for p in MeasurementPhase)
    assert (baseline.samples, baseline.p50, baseline.worst) == (3, 121.0, 124.0)
    # HELD_FAULT sorted: 180 240 250 260 280 290 310 330 → p50 between 260 and 280; p95 at rank 6.65.
    assert fault.samples == 8 and fault.p50 == pytest.approx(270.0)
    assert fault.p95 == pytest.approx(310 + 0.65 * 20) and fault.worst == 330.0
    assert (recovery.samples, recovery.worst, recovery.failing) == (2, 140.0, 0)
    assert condition.breaches == 0 and not condition.breached


def test_slow_recovery_refutes_by_how_much_over_the_rto(core: RunCore, clock: Clock) -> None:
    retro = retro_of(stories.slow_recovery(core, clock))

    assert retro.verdict is Verdict.REFUTED
    assert retro.recovery.met is False and retro.recovery.margin_seconds == pytest.approx(-120.0)
    assert "2m 00s over the RTO of 5m 00s" in str(retro.why)
    assert retro.conditions[0].phases[MeasurementPhase.RECOVERY].failing == 7


def test_breach_names_the_condition_value_and_threshold(core: RunCore, clock: Clock) -> None:
    story = stories.breached(core, clock)
    retro = retro_of(story)

    assert (retro.verdict, retro.ending) == (Verdict.REFUTED, Ending.STOP_CONDITION)
    assert retro.breach is not None
    assert (retro.breach.condition, retro.breach.value, retro.breach.at) == (CONDITION, 812.0, story.at(30))
    assert str(retro.why).startswith(f"Stop condition {CONDITION} breached at ")
    assert "812 ms against the threshold status in [200], ≤ 500 ms" in str(retro.why)
    assert kinds(retro)[-4:] == ["injected", "breach", "reverted", "aborted"]
    assert retro.conditions[0].breached and retro.conditions[0].breaches == 1
    assert retro.recovery.met is None and "aborted" in retro.recovery.text


def test_abort_by_a_person_is_not_tested_and_names_them(core: RunCore, clock: Clock) -> None:
    retro = retro_of(stories.aborted_by_person(core, clock))

    assert (retro.verdict, retro.ending) == (Verdict.NOT_TESTED, Ending.ABORTED)
    assert str(retro.why).startswith(f"Aborted by @{APPROVER} (customer demo starting <now> & then)")
    assert "Recovery after the revert was not watched: the run ended early." in retro.gaps
    ended = retro.timeline[-1]
    assert ended.kind == "aborted" and str(ended.what).startswith(f"Aborted by @{APPROVER}")


def test_controller_lost_says_so_and_marks_the_unobserved_gap(core: RunCore, clock: Clock) -> None:
    story = stories.controller_lost(core, clock)
    retro = retro_of(story)

    assert (retro.verdict, retro.ending) == (Verdict.NOT_TESTED, Ending.CONTROLLER_LOST)
    assert "stopped before the fault window ended" in str(retro.why)
    last = story.at(35).astimezone(ZONE).strftime("%H:%M:%S %Z")
    assert f"Unobserved from {last}, when the controlling process was lost, until the revert." in retro.gaps
    assert retro.window is not None and retro.window.fault_end == story.at(71)


def test_failed_inject_is_not_tested_and_nothing_was_injected(core: RunCore, clock: Clock) -> None:
    retro = retro_of(stories.failed(core, clock))

    assert (retro.verdict, retro.ending) == (Verdict.NOT_TESTED, Ending.FAILED)
    assert str(retro.why) == "It failed: inject failed: ConnectError: connection refused."
    assert "No fault was injected, so the system was never under test." in retro.gaps
    assert "injected" not in kinds(retro) and "reverted" not in kinds(retro)
    assert retro.window is not None and retro.window.fault_start is None


def test_probe_errors_are_gaps_and_not_values(core: RunCore, clock: Clock) -> None:
    retro = retro_of(stories.probe_errors(core, clock))

    fault = retro.conditions[0].phases[MeasurementPhase.FAULT]
    assert (fault.samples, fault.errors, fault.failing) == (10, 2, 0)
    assert fault.worst == 330.0  # errors have no value, so they cannot be the worst
    assert f"{CONDITION}: 2 of 15 samples could not be taken (last: probe error: ReadError)." in retro.gaps


def test_rehearsal_is_a_gap(core: RunCore, clock: Clock) -> None:
    story = stories.begin(core, clock, dry_run=True)
    story.fault(1, 301)
    story.finish(
        302,
        RunState.COMPLETED,
        actor="chaosbot",
        reason="maximum duration reached",
        summary="its stop conditions could not be evaluated (a rehearsal), so the hypothesis was not tested",
    )
    retro = retro_of(story)

    assert retro.verdict is Verdict.NOT_TESTED and retro.rehearsal
    assert (
        str(retro.why) == "Its stop conditions could not be evaluated (a rehearsal), so the hypothesis was not tested."
    )
    assert "A rehearsal (dry run): no real fault was injected." in retro.gaps
    assert f"{CONDITION}: no sample while the fault was on." in retro.gaps


def test_timeline_is_in_the_team_zone(core: RunCore, clock: Clock) -> None:
    story = stories.held(core, clock)
    retro = retro_of(story)

    started = next(entry for entry in retro.timeline if entry.kind == "started")
    local = story.t0.astimezone(ZONE)
    assert (started.day, started.clock, started.abbreviation) == (
        local.strftime("%a %d %b %Y"),
        local.strftime("%H:%M:%S"),
        local.strftime("%Z"),
    )
    assert str(started.what) == f"Started by @{OWNER}"


def test_observability_links_are_filled_with_the_window(core: RunCore, clock: Clock) -> None:
    story = stories.held(core, clock)
    retro = retro_of(story)

    assert retro.window is not None
    start_ms, end_ms = int(retro.window.start.timestamp() * 1000), int(retro.window.end.timestamp() * 1000)
    assert retro.window.start == story.at(-10) and retro.window.end == story.at(312)
    dashboard = retro.links[0]
    assert dashboard.title == "Share-link dashboard"
    assert dashboard.url == (f"https://grafana.example/d/share-links/share-links?orgId=1&from={start_ms}&to={end_ms}")
    assert all("{start" not in link.url and "{end" not in link.url for link in retro.links)


def test_a_link_whose_base_url_is_not_set_is_a_gap(core: RunCore, clock: Clock) -> None:
    story = stories.held(core, clock)
    retro = build(core.db, story.run_id, zone=ZONE, environ={})

    assert retro.links == ()
    assert "The link 'Share-link dashboard' is not shown: GRAFANA_URL is not set." in retro.gaps


def test_action_items_come_from_the_callers_source(core: RunCore, clock: Clock) -> None:
    story = stories.breached(core, clock)
    asked: list[int] = []

    def items(session: Session, run_id: int) -> list[ActionItemLine]:
        asked.append(run_id)
        return [ActionItemLine("AI-1", "Add a DB fallback for share tokens", "rita", date(2026, 12, 9))]

    retro = retro_of(story, action_items=items)

    assert asked == [story.run_id]
    assert [item.what for item in retro.action_items] == ["Add a DB fallback for share tokens"]


@pytest.mark.parametrize("ending", sorted(stories.ENDINGS))
def test_every_ending_gives_a_complete_retrospective(core: RunCore, clock: Clock, ending: str) -> None:
    retro = retro_of(stories.ENDINGS[ending](core, clock))

    assert str(retro.why) and retro.recovery.text and retro.timeline
    assert retro.timeline[0].kind == "planned"
    assert [e.at for e in retro.timeline] == sorted(e.at for e in retro.timeline)
    assert retro.conditions[0].phases[MeasurementPhase.BASELINE].samples == 3
