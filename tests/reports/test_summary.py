"""A seeded quarter (Q4 2026, Sydney time) whose figures were worked out by hand, on SQLite and PostgreSQL.

The runs (planned start, Sydney):
  r13 CE-06 completed in July (the only CE-06 run: "not run in 90 days")
  October:  r1 CE-01 completed, held, 30 s of 60 · r2 CE-02 aborted on a breach, refuted, 90 s of 60
  November: r3 CE-01 completed, held, 40/60 (planned 1 Nov 00:10, i.e. 31 Oct in UTC)
            r4 CE-03 completed, held, 20/30 · r5 CE-02 aborted on a breach, refuted, 100/60
            r6 CE-04 aborted by a person, not tested, 10/120 · r7 CE-05 aborted, controller lost, no recovery
            r8 CE-03 failed, no outcome · r9 CE-01 cancelled · r10 CE-01 expired (planned 30 Nov 23:30)
  December: r11 CE-01 completed, held, 50/60 (planned 1 Dec 00:30, i.e. 30 Nov in UTC) · r12 CE-02 aborted on a
            breach, refuted, 200/60
Action items: a1 (r2) opened 20 Oct, done 5 Nov · a6 (r2) opened 21 Oct, due 30 Oct, done 29 Nov
              a2 (r5) opened 12 Nov, due 20 Nov, open · a3 (r5) opened 12 Nov, due 15 Dec, done 2 Dec
              a4 (r3) opened 5 Nov, due 30 Nov, open · a5 (r12) opened 6 Dec, due 20 Dec, open
"""

from __future__ import annotations

import pytest

from bot.reports.periods import parse_period
from bot.reports.summary import Count, Hypotheses, MonthTrend, summarise
from storage.db import Database
from tests.reports.seed import AFTER, CATALOGUE, SYDNEY, local, summary_of


def counts(items: list[Count]) -> dict[str, int]:
    return {item.name: item.count for item in items}


def test_the_month_of_november(db: Database, seeded: dict[str, int]) -> None:
    links = {seeded["r5"]: "https://slack.example/archives/C1/p5"}
    month = summary_of(db, "2026-11", link_for=links.get)

    assert month.runs_total == 8
    assert counts(month.outcomes) == {"completed": 2, "aborted": 3, "failed": 1, "cancelled": 1, "expired": 1}
    assert month.hypotheses == Hypotheses(held=2, refuted=1, not_tested=3)
    assert counts(month.aborts) == {"stop condition breached": 1, "stopped by a person": 1, "controller lost": 1}
    assert counts(month.abort_reasons)["error rate 7% > 5%"] == 1

    recovery = month.recovery
    assert (recovery.measured, recovery.met, recovery.missed) == (4, 3, 1)
    assert recovery.mean_seconds == pytest.approx(42.5)
    assert recovery.mean_rto_seconds == pytest.approx(67.5)
    assert (recovery.worst_run_id, recovery.worst_seconds, recovery.worst_rto_seconds) == (seeded["r5"], 100, 60)

    actions = month.actions
    assert (actions.opened, actions.done, actions.open, actions.overdue) == (3, 2, 3, 2)

    assert [(entry.experiment_id, entry.last_started) for entry in month.not_run] == [("CE-06", local(2026, 7, 15))]

    expected_order = ["r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10"]
    assert [line.run_id for line in month.runs] == [seeded[name] for name in expected_order]
    r5 = next(line for line in month.runs if line.run_id == seeded["r5"])
    assert (r5.experiment_id, r5.environment, r5.owner, r5.state, r5.hypothesis_held) == (
        "CE-02",
        "staging",
        "U0OWNER",
        "aborted",
        False,
    )
    assert r5.link == "https://slack.example/archives/C1/p5"
    assert month.trend == [] and month.learnings == []


def test_the_fourth_quarter(db: Database, seeded: dict[str, int]) -> None:
    quarter = summary_of(db, "2026-Q4")

    assert quarter.runs_total == 12
    assert counts(quarter.outcomes) == {"completed": 4, "aborted": 5, "failed": 1, "cancelled": 1, "expired": 1}
    assert quarter.hypotheses == Hypotheses(held=4, refuted=3, not_tested=3)
    assert counts(quarter.aborts) == {"stop condition breached": 3, "stopped by a person": 1, "controller lost": 1}
    recovery = quarter.recovery
    assert (recovery.measured, recovery.met, recovery.missed) == (8, 5, 3)
    assert recovery.mean_seconds == pytest.approx(67.5)
    assert recovery.mean_rto_seconds == pytest.approx(63.75)
    assert recovery.worst_run_id == seeded["r12"]
    actions = quarter.actions
    assert (actions.opened, actions.done, actions.open, actions.overdue) == (6, 3, 3, 3)
    assert [entry.experiment_id for entry in quarter.not_run] == ["CE-06"]

    assert quarter.trend == [
        MonthTrend("2026-10", runs=2, completed=1, aborted=1, failed=0, refuted=1, actions_opened=2),
        MonthTrend("2026-11", runs=8, completed=2, aborted=3, failed=1, refuted=1, actions_opened=3),
        MonthTrend("2026-12", runs=2, completed=1, aborted=1, failed=0, refuted=1, actions_opened=1),
    ]
    [learning] = quarter.learnings
    assert (learning.experiment_id, learning.refuted, learning.last_run_id) == ("CE-02", 3, seeded["r12"])
    assert learning.last_breach == "error rate 9% > 5%"
    assert (learning.items_total, learning.items_open) == (5, 2)
    assert {item.item_id for item in learning.items} == {seeded[name] for name in ("a1", "a2", "a3", "a5", "a6")}
    assert quarter.runs == []  # the executive update stays at the higher level


def test_the_current_month_counts_open_items_as_of_now(db: Database, seeded: dict[str, int]) -> None:
    with db.transaction() as session:
        month = summarise(session, parse_period("2026-11"), experiments=CATALOGUE, zone=SYDNEY, now=local(2026, 11, 25))
    # On 25 Nov: a1 is done, a6 not yet; a4 (due 30 Nov) is not overdue yet; a2 (due 20 Nov) and a6 (30 Oct) are.
    assert month.as_of == local(2026, 11, 25)
    assert (month.actions.open, month.actions.overdue) == (4, 2)


def test_an_empty_period_and_an_empty_catalogue(db: Database) -> None:
    with db.transaction() as session:
        month = summarise(session, parse_period("2030-01"), experiments=[], zone=SYDNEY, now=AFTER)
    assert month.runs_total == 0 and month.outcomes == [] and month.runs == []
    assert month.hypotheses == Hypotheses() and month.recovery.measured == 0 and month.not_run == []


def test_a_long_month_lists_only_as_many_runs_as_asked(db: Database, seeded: dict[str, int]) -> None:
    month = summary_of(db, "2026-11", runs_limit=3)
    assert len(month.runs) == 3 and month.runs_total == 8
