"""A run from start to end: breach → abort, maximum duration → revert → recovery vs RTO, refused starts."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bot.catalogue.models import Experiment
from bot.engine import InjectFailed, PreflightFailed, SteadyStateNotMet
from bot.records import service as records
from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World
from tests.engine.lab import fault_is_on, make_experiment, wait_for


def ended(world: World, run_id: int) -> Callable[[], bool]:
    """The run ended and its outcome is stored (the outcome is written just after the transition)."""
    return lambda: world.run(run_id).run_state.is_final and stored(world, run_id)[0] is not None


def stored(world: World, run_id: int):  # type: ignore[no-untyped-def]
    with world.db.transaction() as session:
        return (
            records.outcome(session, run_id=run_id),
            records.faults(session, run_id=run_id),
            records.measurements(session, run_id=run_id),
        )


def test_a_breach_aborts_reverts_and_names_condition_value_and_threshold(world: World) -> None:
    world.lab.when_faulted = "slow"
    engine = world.engine()
    run_id = world.approved()

    run = engine.start(OWNER, run_id)

    assert run.run_state is RunState.RUNNING and world.lab.fault_on
    wait_for(ended(world, run_id), what="the breach abort")
    run = world.run(run_id)
    assert run.run_state is RunState.ABORTED and run.ended_by == "chaosbot"
    assert run.end_reason is not None
    assert run.end_reason.startswith("stop condition target latency: value ")
    assert "ms > threshold 500 ms" in run.end_reason
    assert not fault_is_on(world.lab) and len(world.lab.times("revert")) == 1
    outcome, faults, samples = stored(world, run_id)
    assert outcome is not None and outcome.result == "aborted" and outcome.hypothesis_held is False
    assert outcome.breach == run.end_reason
    assert [f.state for f in faults] == ["reverted"]
    assert [s.phase for s in samples][:2] == ["baseline", "fault"] and samples[1].ok is False
    assert "aborted by chaosbot: stop condition target latency" in world.events(run_id)
    assert engine.running() == []


def test_after_a_breach_abort_the_probes_measure_the_recovery_as_after_a_completion(world: World) -> None:
    world.lab.when_faulted = "slow"
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    wait_for(ended(world, run_id), what="the breach abort")

    wait_for(lambda: stored(world, run_id)[0].recovery_seconds is not None, what="the recovery measured")
    outcome, _, samples = stored(world, run_id)
    assert world.run(run_id).run_state is RunState.ABORTED and outcome.hypothesis_held is False
    assert outcome.recovery_seconds < 2 and outcome.breach
    phases = [s.phase for s in samples]
    assert phases[: phases.index("recovery")] == ["baseline", "fault"] and not samples[1].ok
    after = [s for s in samples if s.phase == "recovery"]
    assert len(after) >= 2 and after[-1].ok and after[-2].ok and min(s.at for s in after) >= samples[1].at
    assert f"RUN-{run_id} recovered: the steady state was back" in world.events(run_id)


def test_max_duration_reverts_then_measures_recovery_within_rto(world: World) -> None:
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)

    progress = wait_for(lambda: (p := engine.progress(run_id)) and p.conditions[0].value is not None and p)
    assert progress.phase == "fault" and progress.max_duration.total_seconds() == 2
    assert progress.conditions[0].threshold == "status in [200], ≤ 500 ms"
    wait_for(ended(world, run_id), what="completion")

    run = world.run(run_id)
    assert run.run_state is RunState.COMPLETED and not world.lab.fault_on
    outcome, faults, samples = stored(world, run_id)
    assert outcome is not None and outcome.result == "completed"
    assert outcome.hypothesis_held is True and outcome.rto_seconds == 2
    assert outcome.recovery_seconds is not None and 0 <= outcome.recovery_seconds < 1
    assert [f.state for f in faults] == ["reverted"]
    assert {s.phase for s in samples} == {"baseline", "fault", "recovery"}
    assert engine.progress(run_id) is None
    assert (run_id, False) in world.notifier.changed  # progress refreshes
    assert "hypothesis held" in world.events(run_id)


def test_a_fault_shorter_than_the_probe_interval_is_still_sampled_while_it_is_on(
    sqlite_db: Database, make_world
) -> None:  # type: ignore[no-untyped-def]
    """Otherwise the first sample would come after the revert and a quick recovery would 'confirm' an untested
    hypothesis."""
    world = make_world(sqlite_db)
    world = make_world(sqlite_db, make_experiment(world.lab, max_duration=1, interval=3, rto=5))
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)

    wait_for(ended(world, run_id), timeout=20, what="completion")

    outcome, faults, samples = stored(world, run_id)
    assert world.run(run_id).run_state is RunState.COMPLETED and not world.lab.fault_on
    assert [f.state for f in faults] == ["reverted"]
    assert "fault" in {s.phase for s in samples}
    assert outcome is not None and outcome.hypothesis_held is True


def test_recovery_slower_than_rto_refutes_the_hypothesis(sqlite_db: Database, make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(sqlite_db)
    world = make_world(sqlite_db, make_experiment(world.lab, max_duration=1, rto=1))
    world.lab.bad_after_revert = 1.6
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)

    wait_for(ended(world, run_id), what="completion")

    outcome, _, samples = stored(world, run_id)
    assert world.run(run_id).run_state is RunState.COMPLETED
    assert outcome is not None and outcome.hypothesis_held is False
    assert outcome.recovery_seconds is not None and 1.0 < outcome.recovery_seconds < 3.5
    assert [s.ok for s in samples if s.phase == "recovery"][:1] == [False]
    assert "over the RTO of 1s: hypothesis refuted" in (outcome.summary or "")


def test_a_run_without_stop_conditions_waits_for_its_maximum_duration(sqlite_db: Database, make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(sqlite_db)
    world = make_world(sqlite_db, make_experiment(world.lab, max_duration=1, conditions=[]))
    engine = world.engine()
    run_id = world.approved()
    started = time.monotonic()
    engine.start(OWNER, run_id)

    wait_for(ended(world, run_id), what="completion")

    assert time.monotonic() - started >= 1.0
    outcome, _, samples = stored(world, run_id)
    assert world.run(run_id).run_state is RunState.COMPLETED and not world.lab.fault_on
    assert outcome is not None and outcome.hypothesis_held is None and samples == []


def test_dry_run_injects_nothing_but_still_probes(sqlite_db: Database, make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(sqlite_db)
    engine = world.engine()
    run_id = world.approved()

    run = engine.start(OWNER, run_id, dry_run=True)
    wait_for(lambda: len(stored(world, run_id)[2]) >= 2, what="a fault-phase sample")
    result = engine.abort(OWNER, run_id, "rehearsal over")

    assert run.dry_run and result.reverted
    assert world.lab.calls == []
    _, faults, samples = stored(world, run_id)
    assert [f.adapter for f in faults] == ["dry_run"] and [f.state for f in faults] == ["reverted"]
    assert samples[0].phase == "baseline" and samples[1].phase == "fault"


@pytest.mark.parametrize("rehearsal", [False, True])
def test_an_entry_that_uses_the_dry_run_adapter_starts_and_reverts(  # type: ignore[no-untyped-def]
    sqlite_db: Database, make_world, rehearsal: bool
) -> None:
    world = make_world(sqlite_db)
    entry = make_experiment(world.lab).snapshot()
    entry["fault"] = {"adapter": "dry_run", "params": {"would_use": "http", "params": entry["fault"]["params"]}}
    world = make_world(sqlite_db, Experiment.model_validate(entry))
    engine = world.engine()
    run_id = world.approved()

    engine.start(OWNER, run_id, dry_run=rehearsal)
    result = engine.abort(OWNER, run_id)

    assert result.reverted and world.notifier.alerts == [] and world.lab.calls == []
    assert [(f.adapter, f.state) for f in stored(world, run_id)[1]] == [("dry_run", "reverted")]


def test_failed_preflight_refuses_the_start_and_says_why(sqlite_db: Database, make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(sqlite_db)
    world.lab.preflight_status = 500
    engine = world.engine()
    run_id = world.approved()

    with pytest.raises(PreflightFailed, match=r"Preflight failed for RUN-\d+.*HTTP 500"):
        engine.start(OWNER, run_id)

    assert world.run(run_id).run_state is RunState.APPROVED and world.lab.calls == []


def test_steady_state_must_hold_before_anything_is_injected(sqlite_db: Database, make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(sqlite_db)
    world.lab.target_status = 503
    engine = world.engine()
    run_id = world.approved()

    with pytest.raises(SteadyStateNotMet, match="target latency: status 503 not in expected"):
        engine.start(OWNER, run_id)

    assert world.run(run_id).run_state is RunState.APPROVED and world.lab.calls == []
    assert engine.coordination.expired([run_id]) == [run_id]  # the lease was given back


def test_failed_inject_reverts_and_marks_the_run_failed(world: World) -> None:
    world.lab.inject_status = 500
    engine = world.engine()
    run_id = world.approved()

    with pytest.raises(InjectFailed, match=r"Could not inject the fault of RUN-.*HTTP 500.*reverted"):
        engine.start(OWNER, run_id)

    run = world.run(run_id)
    assert run.run_state is RunState.FAILED and (run.end_reason or "").startswith("inject failed")
    assert [step for step, _ in world.lab.calls] == ["inject", "revert"]
    outcome, faults, _ = stored(world, run_id)
    assert outcome is not None and outcome.result == "failed"
    assert [f.state for f in faults] == ["reverted"]
