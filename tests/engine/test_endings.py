"""Every way a run ends maps to its final state and outcome in one place (``Ending``)."""

from __future__ import annotations

import pytest

from bot.engine.endings import ENGINE_ACTOR, Ending
from bot.runs.models import RunState

RTO = 60.0


@pytest.mark.parametrize(
    ("recovery", "watched", "evaluated", "held", "says"),
    [
        (12.0, True, True, True, "recovered in 12.0 s after the revert, within the RTO of 1m 00s: hypothesis held"),
        (90.0, True, True, False, "over the RTO of 1m 00s: hypothesis refuted"),
        (None, True, True, False, "the steady state did not come back after the revert (RTO 1m 00s)"),
        (None, False, True, None, "no stop conditions, so recovery was not measured"),
        (None, True, False, None, "could not be evaluated (a rehearsal), so the hypothesis was not tested"),
    ],
)
def test_a_completed_run_carries_the_verdict_on_its_hypothesis(
    recovery: float | None, watched: bool, evaluated: bool, held: bool | None, says: str
) -> None:
    ending = Ending.completed(RTO, recovery, watched=watched, evaluated=evaluated)
    assert (ending.result, ending.actor, ending.hypothesis_held) == (RunState.COMPLETED, ENGINE_ACTOR, held)
    assert ending.summary is not None and says in ending.summary
    assert ending.reason == f"maximum duration reached; {ending.summary}"


def test_a_completed_run_with_no_sample_while_the_fault_was_on_tested_nothing() -> None:
    ending = Ending.completed(RTO, 3.0, watched=True, evaluated=True, sampled=False)
    assert ending.hypothesis_held is None
    assert ending.summary is not None and "no sample was taken while the fault was on" in ending.summary


def test_a_breach_refutes_the_hypothesis_and_a_person_s_abort_tests_nothing() -> None:
    breached = Ending.aborted(ENGINE_ACTOR, "stop condition api: slow", RTO, breach="stop condition api: slow")
    by_hand = Ending.aborted("U1", "enough", RTO)
    assert (breached.result, breached.hypothesis_held, breached.breach) == (
        RunState.ABORTED,
        False,
        "stop condition api: slow",
    )
    assert (by_hand.result, by_hand.actor, by_hand.hypothesis_held) == (RunState.ABORTED, "U1", None)


def test_the_engine_s_own_failures_and_lost_controllers() -> None:
    failed = Ending.failed("inject failed: boom", RTO)
    lost = Ending.controller_lost(7, RTO)
    assert (failed.result, failed.actor, failed.outcome()["summary"]) == (
        RunState.FAILED,
        ENGINE_ACTOR,
        "inject failed: boom",
    )
    assert (lost.result, lost.actor) == (RunState.ABORTED, ENGINE_ACTOR)
    assert lost.reason.startswith("controller lost: the chaosbot process running RUN-7")


def test_an_ending_read_back_from_the_spool_is_the_same_ending() -> None:
    for ending in (
        Ending.completed(RTO, 5.0, watched=True, evaluated=True),
        Ending.aborted("U1", "enough", RTO, breach="x"),
        Ending.failed("no", RTO),
    ):
        again = Ending.from_record(ending.actor, ending.reason, ending.outcome())
        assert again.outcome() == ending.outcome()
        assert (again.result, again.actor, again.reason) == (ending.result, ending.actor, ending.reason)
