"""A team's Chaos Toolkit experiment run by the engine against the local lab (issue 18): abort mid-method, the
kill switch, SIGTERM and SIGKILL of the controller, a breach of a steady-state probe, a rollback that fails.

The experiment (written here, pointed at the lab on 127.0.0.1) switches the lab's toggle on over HTTP, then
blocks in a process action; its rollback switches the toggle off with a secret bearer token; its steady-state
probe reads the target, tolerance 200. Whoever reverts runs the rollback, and the run's record keeps each
rollback's result, shown in the retrospective (Slack, console, Markdown) and the Chaos Toolkit journal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue.models import Experiment
from bot.catalogue.service import parse_catalogue
from bot.interface.learning.messages import retrospective_message
from bot.interface.render import NameRenderer
from bot.records import service as records
from bot.retro.journal import run_journal
from bot.retro.markdown import render_markdown
from bot.retro.service import build
from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import Lab, fault_is_on, handed_over, killed_controller, wait_for
from tests.waiting import holds_for

TOKEN = "s3cret-lab-token-4711"  # the rollback's bearer token: must never reach the record or a message
ROLLBACK = "switch-the-toggle-off"
ABORT_BUDGET = 1.0  # seconds from the abort to the rollback arriving: a local HTTP rollback takes milliseconds
UTC = ZoneInfo("UTC")


def lab_experiment(folder: Path, *, block_seconds: float) -> Path:
    """A Chaos Toolkit experiment against the lab: inject, block, inject again (must never run after an abort)."""

    def http(name: str, path: str, method: str = "POST", **extra: Any) -> dict[str, Any]:
        provider = {"type": "http", "url": "${lab_url}" + path, "method": method, "timeout": 3, **extra}
        return {"type": "action", "name": name, "provider": provider}

    experiment = {
        "title": "The target copes with the lab toggle",
        "description": "Switch the lab toggle on, wait, and switch it off again in the rollback.",
        "configuration": {"lab_url": {"type": "env", "key": "CTK_LAB_URL"}},
        "secrets": {"lab": {"token": {"type": "env", "key": "CTK_LAB_TOKEN"}}},
        "steady-state-hypothesis": {
            "title": "The target answers",
            "probes": [
                {
                    "type": "probe",
                    "name": "target-answers",
                    "tolerance": 200,
                    "provider": {"type": "http", "url": "${lab_url}/target", "timeout": 2},
                }
            ],
        },
        "method": [
            http("switch-the-toggle-on", "/toggle/inject"),
            {
                "type": "action",
                "name": "hold-the-fault",
                "provider": {"type": "process", "path": "sleep", "arguments": str(block_seconds)},
            },
            http("switch-the-toggle-on-again", "/toggle/inject?again=1"),
        ],
        "rollbacks": [
            http(ROLLBACK, "/toggle/revert", headers={"Authorization": "Bearer ${token}"}, secrets=["lab"]),
        ],
    }
    path = folder / "lab-toggle.json"
    path.write_text(json.dumps(experiment), encoding="utf-8")
    return path


def ctk_entry(folder: Path, *, max_duration: int = 60) -> Experiment:
    """The catalogue entry, loaded as the catalogue loads it (the steady-state probe becomes a stop condition)."""
    entry = {
        "id": "CE-93",
        "title": "Lab toggle from Chaos Toolkit",
        "hypothesis": "The target keeps answering 200.",
        "method": "The team's Chaos Toolkit experiment.",
        "expected_outcome": "No errors.",
        "safeguards": ["Local lab only."],
        "rollback_steps": ["POST /toggle/revert on the lab by hand.", "Tell the lab owner."],
        "environments": ["staging"],
        "fault": {"adapter": "chaostoolkit", "params": {"experiment": "lab-toggle.json"}},
        "max_duration": max_duration,
        "rto": 2,
        "probe_interval": 1,
    }
    [experiment] = parse_catalogue({"experiments": [entry]}, source=str(folder / "catalogue.yml")).experiments
    return experiment


@pytest.fixture
def ctk_world(
    db: Database, lab: Lab, make_world: Callable[..., World], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., World]:
    monkeypatch.setenv("CTK_LAB_URL", lab.url)
    monkeypatch.setenv("CTK_LAB_TOKEN", TOKEN)

    def build_world(*, block_seconds: float = 20, max_duration: int = 60) -> World:
        lab_experiment(tmp_path, block_seconds=block_seconds)
        return make_world(db, ctk_entry(tmp_path, max_duration=max_duration))

    return build_world


def approved(world: World) -> int:
    return world.approved("CE-93")


def steps(world: World, run_id: int) -> list[dict[str, Any]]:
    with world.db.transaction() as session:
        return [step for fault in records.faults(session, run_id=run_id) for step in fault.revert_steps or []]


def assert_no_secret(world: World, run_id: int) -> None:
    with world.db.transaction() as session:
        stored = json.dumps([(f.handle, f.revert_steps, f.last_error) for f in records.faults(session, run_id=run_id)])
    assert TOKEN not in stored
    assert TOKEN not in world.events(run_id) and all(TOKEN not in str(words) for _, words in world.notifier.alerts)


def test_an_abort_mid_method_runs_the_rollback_at_once_and_the_method_stops_at_its_next_activity(
    ctk_world: Callable[..., World],
) -> None:
    world = ctk_world(block_seconds=2)
    engine = world.engine()
    run_id = approved(world)
    engine.start(OWNER, run_id)
    assert world.lab.fault_on and len(world.lab.times("inject")) == 1  # the method now blocks in `sleep 2`

    asked = time.monotonic()
    result = engine.abort(OWNER, run_id, "seen enough")
    answered = time.monotonic()

    assert result.reverted and not fault_is_on(world.lab)
    assert world.lab.times("revert")[0] - asked < ABORT_BUDGET, "the abort waited for the blocking action"
    assert answered - asked < ABORT_BUDGET
    assert world.run(run_id).run_state is RunState.ABORTED
    [step] = steps(world, run_id)
    assert step["name"] == ROLLBACK and step["status"] == "succeeded" and step["error"] is None
    assert 0 < step["duration_seconds"] < ABORT_BUDGET
    # Once `sleep` returns, the method stops at the boundary: its next action never switches the toggle on again.
    holds_for(lambda: not world.lab.fault_on and len(world.lab.times("inject")) == 1, 2.5, "the method stopped")
    assert_no_secret(world, run_id)


def test_the_kill_switch_runs_the_rollbacks_of_a_chaos_toolkit_run(ctk_world: Callable[..., World]) -> None:
    world = ctk_world()
    engine = world.engine()
    run_id = approved(world)
    engine.start(OWNER, run_id)

    asked = time.monotonic()
    [result] = engine.abort_all("sam", "incident in progress")

    assert result.reverted and world.lab.times("revert")[0] - asked < ABORT_BUDGET
    assert world.core.kill_switch.engaged() and world.run(run_id).run_state is RunState.ABORTED
    assert [step["status"] for step in steps(world, run_id)] == ["succeeded"]
    engine.resume("rita")


def test_sigterm_alone_runs_the_rollbacks_before_exiting(ctk_world: Callable[..., World]) -> None:
    world = ctk_world()
    alone = world.engine()
    run_id = approved(world)
    alone.start(OWNER, run_id)
    alone.heartbeat()

    alone.shut_down()  # what SIGTERM calls

    assert not world.lab.fault_on and len(world.lab.times("revert")) == 1
    assert world.run(run_id).end_reason == "chaosbot was shut down"
    assert [step["name"] for step in steps(world, run_id)] == [ROLLBACK]


def test_sigterm_hands_the_run_over_and_the_other_replica_runs_the_rollbacks(ctk_world: Callable[..., World]) -> None:
    world = ctk_world()
    a, b = world.engine(), world.engine()
    run_id = approved(world)
    a.start(OWNER, run_id)

    handed_over(a, b, run_id)
    assert world.lab.fault_on and world.run(run_id).run_state is RunState.RUNNING

    assert b.abort(OWNER, run_id, "done watching").reverted
    assert not world.lab.fault_on and len(world.lab.times("revert")) == 1
    assert [step["status"] for step in steps(world, run_id)] == ["succeeded"]


def test_sigkill_of_the_controller_has_another_replica_run_the_rollbacks_from_the_handle(
    ctk_world: Callable[..., World],
) -> None:
    world = ctk_world()
    [experiment] = world.core.catalogue.experiments
    run_id = approved(world)
    killed_controller(world.lab, world.db.url, experiment, run_id)  # the method and its process are gone
    assert world.lab.fault_on and world.lab.times("revert") == []

    survivor = world.engine(lease_ttl=timedelta(seconds=1))
    assert wait_for(survivor.recover_orphans, timeout=5, what="the lapsed lease to be noticed") == [run_id]

    assert not world.lab.fault_on and len(world.lab.times("revert")) == 1
    run = world.run(run_id)
    assert run.run_state is RunState.ABORTED and (run.end_reason or "").startswith("controller lost")
    assert [step["status"] for step in steps(world, run_id)] == ["succeeded"]
    assert_no_secret(world, run_id)


def test_a_breach_of_the_steady_state_probe_auto_aborts_and_runs_the_rollbacks(
    ctk_world: Callable[..., World],
) -> None:
    world = ctk_world()
    world.lab.when_faulted = "error"  # the target answers 503 while the toggle is on
    engine = world.engine()
    run_id = approved(world)
    engine.start(OWNER, run_id)

    wait_for(lambda: world.run(run_id).run_state is RunState.ABORTED, timeout=10, what="the auto-abort")

    assert not world.lab.fault_on and len(world.lab.times("revert")) == 1
    with world.db.transaction() as session:
        outcome = records.outcome(session, run_id=run_id)
    assert outcome is not None
    assert outcome.breach == "stop condition target-answers: HTTP 503 outside tolerance 200"
    assert [step["status"] for step in steps(world, run_id)] == ["succeeded"]


def test_a_rollback_that_fails_raises_the_loud_alert_and_the_retrospective_lists_it(
    ctk_world: Callable[..., World],
) -> None:
    world = ctk_world()
    engine = world.engine()
    run_id = approved(world)
    engine.start(OWNER, run_id)
    world.lab.revert_status = 500

    result = engine.abort(OWNER, run_id, "stop")

    assert not result.reverted and world.lab.fault_on
    assert len(world.lab.times("revert")) == 1  # a failed rollback is not retried blindly: it is not retryable
    [(alert_run, words)] = world.notifier.alerts
    alert = str(words)
    assert alert_run == run_id and f"'{ROLLBACK}'" in alert
    assert "1. POST /toggle/revert on the lab by hand.\n2. Tell the lab owner." in alert
    [step] = steps(world, run_id)
    assert step["name"] == ROLLBACK and step["status"] == "failed" and step["error"] == "answered HTTP 500"
    assert_no_secret(world, run_id)

    retro = build(world.db, run_id, zone=UTC)
    [shown] = retro.rollbacks
    assert (shown.name, shown.succeeded) == (ROLLBACK, False)
    slack = json.dumps(retrospective_message(retro).blocks)
    assert f":x: {ROLLBACK}: *failed* after" in slack and "answered HTTP 500" in slack
    console = json.dumps(retrospective_message(retro, NameRenderer({})).blocks)
    assert f":x: {ROLLBACK}: *failed*" in console
    markdown = render_markdown(retro)
    assert "## Rollbacks" in markdown and f"| {ROLLBACK} | failed |" in markdown.replace("\\-", "-")
    journal = run_journal(world.db, run_id, zone=UTC)
    [rollback] = journal["rollbacks"]
    assert rollback["activity"]["name"] == ROLLBACK and rollback["status"] == "failed"
    assert rollback["exception"] == ["answered HTTP 500"]
    assert rollback["duration"] == pytest.approx(step["duration_seconds"])
    assert [a["name"] for a in journal["experiment"]["rollbacks"]] == [ROLLBACK]
    assert TOKEN not in slack + markdown + json.dumps(journal)
