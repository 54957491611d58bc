"""Simultaneous clicks: eight threads fire together and the core still makes exactly one decision.

Runs on SQLite and on a real PostgreSQL (``db``), and across separate engines as separate replicas would.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import pytest

from bot.errors import DomainError, IllegalTransition, NotPermitted
from bot.runs.core import RunCore
from bot.runs.models import Run, RunState
from bot.runs.transitions import Approved
from storage.db import Database
from tests.core.helpers import OWNER, actions, approved_run, events, plan_run, said, verify_chain

THREADS = 8
T = TypeVar("T")
Outcome = T | BaseException


def together(work: Callable[[int], T], threads: int = THREADS) -> list[Outcome[T]]:
    """Run ``work(i)`` in ``threads`` threads released at the same instant; return results or exceptions."""
    barrier = threading.Barrier(threads)
    outcomes: list[Outcome[T] | None] = [None] * threads

    def runner(index: int) -> None:
        barrier.wait(timeout=10)
        try:
            outcomes[index] = work(index)
        except BaseException as exc:
            outcomes[index] = exc

    workers = [threading.Thread(target=runner, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers), "a thread hung: deadlock or lock wait"
    return outcomes  # type: ignore[return-value]  # every slot was filled by its thread


def split(outcomes: list[Outcome[T]]) -> tuple[list[T], list[BaseException]]:
    wins = [o for o in outcomes if not isinstance(o, BaseException)]
    losses = [o for o in outcomes if isinstance(o, BaseException)]
    unexpected = [o for o in losses if not isinstance(o, DomainError)]
    assert not unexpected, f"a loser got a non-domain error: {unexpected!r}"
    return wins, losses


def test_same_person_approving_eight_times_at_once_counts_once(core: RunCore, db: Database) -> None:
    run = plan_run(core)

    wins, losses = split(together(lambda _i: core.transitions.approve("rita", run.id)))

    assert len(wins) == 1 and len(losses) == THREADS - 1
    for loss in losses:
        assert isinstance(loss, NotPermitted | IllegalTransition)
        assert "already approved" in str(loss)
    stored = core.queries.run(run.id)
    assert [(a.role, a.user_id) for a in stored.approvals] == [("reliability_partner", "rita")]
    assert actions(db, run.id).count("approval.given") == 1
    assert verify_chain(db).ok


def test_two_stakeholders_approving_at_once_credit_the_role_once(core: RunCore, db: Database) -> None:
    run = plan_run(core)
    people = ["stella", "sid"] * (THREADS // 2)

    wins, losses = split(together(lambda i: core.transitions.approve(people[i], run.id)))

    assert len(wins) == 1
    winner: Approved = wins[0]
    assert winner.role.value == "stakeholder"
    stakeholders = [a for a in core.queries.run(run.id).approvals if a.role == "stakeholder"]
    assert len(stakeholders) == 1
    for loss in losses:
        assert isinstance(loss, NotPermitted)
        assert "already approved" in loss.message and "stakeholder" in loss.message
    assert any(f"stakeholder by <@{stakeholders[0].user_id}>" in said(loss) for loss in losses)
    assert actions(db, run.id).count("approval.given") == 1


def test_every_approver_at_once_approves_the_run_exactly_once(core: RunCore, db: Database) -> None:
    run = plan_run(core)
    people = ["rita", "sam", "stella", "sid", "rita", "sam", "stella", "sid"]

    wins, _losses = split(together(lambda i: core.transitions.approve(people[i], run.id)))

    stored = core.queries.run(run.id)
    assert stored.run_state is RunState.APPROVED
    assert sorted(a.role for a in stored.approvals) == ["reliability_partner", "security_specialist", "stakeholder"]
    assert len(wins) == 3 and sum(w.complete for w in wins) == 1
    assert actions(db, run.id).count("run.approved") == 1
    assert actions(db, run.id).count("approval.given") == 3
    assert verify_chain(db).ok


def assert_single_start(core: RunCore, db: Database, run: Run, outcomes: list[Outcome[Run]]) -> None:
    wins, losses = split(outcomes)
    assert len(wins) == 1, f"{len(wins)} starts succeeded"
    stored = core.queries.run(run.id)
    assert stored.run_state is RunState.RUNNING
    assert wins[0].started_by == stored.started_by
    for loss in losses:
        assert isinstance(loss, IllegalTransition)
        assert "already running" in loss.message and f"started by <@{stored.started_by}>" in said(loss)
    started = [e for e in events(db, run.id) if e.action == "run.started"]
    assert len(started) == 1 and started[0].actor == stored.started_by
    assert verify_chain(db).ok


def test_owner_and_approvers_starting_at_once_start_it_once(core: RunCore, db: Database) -> None:
    run = approved_run(core)
    starters = [OWNER, "rita", "sam", "stella", "sid", "eve", OWNER, "rita"]

    outcomes = together(lambda i: core.transitions.begin(starters[i], run.id))

    assert_single_start(core, db, run, outcomes)


def test_replicas_with_their_own_engines_start_it_once(db: Database, make_core: Callable[[Database], RunCore]) -> None:
    core = make_core(db)
    run = approved_run(core)
    replicas = [Database(db.url) for _ in range(THREADS)]
    cores = [make_core(replica) for replica in replicas]
    try:
        outcomes = together(lambda i: cores[i].transitions.begin(OWNER if i % 2 else "rita", run.id))
    finally:
        for replica in replicas:
            replica.dispose()

    assert_single_start(core, db, run, outcomes)


def test_cancel_racing_a_start_leaves_one_consistent_ending(core: RunCore, db: Database) -> None:
    run = approved_run(core)

    def act(i: int) -> Run:
        return core.transitions.cancel(OWNER, run.id, "stand down") if i % 2 else core.transitions.begin("rita", run.id)

    wins, losses = split(together(act))

    assert len(wins) == 1 and all(isinstance(loss, IllegalTransition) for loss in losses)
    final = core.queries.run(run.id).run_state
    assert final in (RunState.RUNNING, RunState.CANCELLED)
    expected = "run.started" if final is RunState.RUNNING else "run.cancelled"
    assert actions(db, run.id)[-1] == expected
    assert Counter(actions(db, run.id))[expected] == 1
    assert "run.started" not in actions(db, run.id) or "run.cancelled" not in actions(db, run.id)


def test_concurrent_audit_appends_keep_the_chain_whole(core: RunCore, db: Database) -> None:
    per_thread = 25

    def append_many(i: int) -> int:
        for n in range(per_thread):
            core.audit.record(f"user{i}", "command.status", None, n=n)
        return i

    wins, _ = split(together(append_many))

    total = THREADS * per_thread
    assert len(wins) == THREADS
    report = verify_chain(db)
    assert report.ok, report.problem
    assert report.checked == total
    assert [e.seq for e in events(db)] == list(range(1, total + 1))
    assert Counter(e.actor for e in events(db)) == {f"user{i}": per_thread for i in range(THREADS)}


def test_postgres_rounds_of_simultaneous_starts_never_double_start(
    pg_db: Database, make_core: Callable[[Database], RunCore]
) -> None:
    core = make_core(pg_db)
    for _round in range(5):
        run = approved_run(core)
        outcomes = together(lambda i, run_id=run.id: core.transitions.begin(OWNER if i % 2 else "sam", run_id))
        assert_single_start(core, pg_db, run, outcomes)


@pytest.mark.parametrize("threads", [2, THREADS])
def test_kill_switch_engaged_by_many_at_once_is_recorded_once(core: RunCore, db: Database, threads: int) -> None:
    outcomes = together(lambda i: core.kill_switch.engage(f"user{i}", "incident"), threads=threads)

    assert outcomes.count(True) == 1 and outcomes.count(False) == threads - 1
    assert actions(db) == ["killswitch.engaged"]
