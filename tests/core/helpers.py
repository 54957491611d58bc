"""Small helpers shared by the runs-core tests: building runs, reading the audit log, writing files."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.catalogue.models import Experiment
from bot.catalogue.service import bundled_path
from bot.engine.models import Lease
from bot.errors import DomainError
from bot.runs.core import RunCore
from bot.runs.models import Run, RunState
from bot.runs.rules import PlanRequest
from storage.db import Database, utcnow


def said(error: DomainError) -> str:
    """What the core said, with its people and groups marked as values: ``<@U…>`` and ``<!subteam^S…>``.

    (Not the Slack renderer: these tests check that people stay values, not how Slack escapes text.)"""
    return error.words.render(person=lambda p: f"<@{p.user_id}>", group=lambda g: f"<!subteam^{g.group_id}>")


OWNER = "oliver"
STAGING_APPROVERS = ("rita", "sam", "stella")
PRODUCTION_APPROVERS = ("rita", "sam", "stella", "eve")


def plan_run(
    core: RunCore,
    *,
    owner: str = OWNER,
    experiment: str = "CE-01",
    environment: str | None = None,
    start: datetime | None = None,
    rollback: str | None = None,
    notes: str = "",
) -> Run:
    request = PlanRequest(
        experiment_id=experiment,
        environment=environment,
        planned_start=start or allowed_start(core, environment),
        rollback_steps=rollback,
        notes=notes,
    )
    return core.transitions.plan(owner, request)


def allowed_start(core: RunCore, environment: str | None) -> datetime | None:
    """Now, or the next moment ``environment``'s off-peak windows allow (a plan outside them is refused);
    None (now) for an environment without windows."""
    name = (environment or "").strip().lower()
    if name not in core.policy.environments:
        return None
    windows, now = core.gate.off_peak(name), core.clock()
    return None if windows.allowed(now) else windows.next_allowed_start(now)


def approve_all(core: RunCore, run_id: int, approvers: tuple[str, ...] = STAGING_APPROVERS) -> Run:
    for approver in approvers:
        core.transitions.approve(approver, run_id)
    return core.queries.run(run_id)


def approved_run(core: RunCore, **plan: Any) -> Run:
    run = plan_run(core, **plan)
    return approve_all(core, run.id)


def running_run(core: RunCore, *, starter: str = OWNER, **plan: Any) -> Run:
    run = approved_run(core, **plan)
    return core.transitions.begin(starter, run.id)


def run_in_state(core: RunCore, state: RunState) -> Run:
    """A run brought to ``state`` through the core's own flows (never by writing the row)."""
    if state is RunState.PLANNED:
        return plan_run(core)
    if state is RunState.APPROVED:
        return approved_run(core)
    if state is RunState.RUNNING:
        return running_run(core)
    if state in (RunState.COMPLETED, RunState.ABORTED, RunState.FAILED):
        run = running_run(core)
        return core.transitions.finish(OWNER, run.id, state, reason="done")
    run = plan_run(core)
    if state is RunState.REJECTED:
        return core.transitions.reject("rita", run.id, "not this week")
    if state is RunState.CANCELLED:
        return core.transitions.cancel(OWNER, run.id, "changed my mind")
    raise ValueError(f"no recipe for {state}")


def add_runs(
    db: Database,
    experiment: Experiment,
    state: RunState,
    count: int,
    *,
    planned_start: datetime,
    environment: str = "staging",
    owner: str = OWNER,
    leased_to: str | None = None,
) -> list[int]:
    """``count`` runs written straight into the table in one transaction: hundreds in a fraction of a second,
    for tests of how lists of runs are read and shown (not of how runs get there). A running one was started
    by its owner at ``planned_start``; with ``leased_to``, that replica holds its lease for an hour, written in
    the same transaction, so a live server's dead man's switch never sees it orphaned. Returns their ids, oldest
    first."""
    running = state is RunState.RUNNING
    with db.transaction() as session:
        rows = [
            Run(
                experiment_id=experiment.id,
                experiment=experiment.snapshot(),
                experiment_hash=experiment.content_hash(),
                environment=environment,
                owner=owner,
                planned_start=planned_start,
                rollback_steps="1. Run `/chaos abort`.",
                state=state.value,
                auto_start=False,
                started_at=planned_start if running else None,
                started_by=owner if running else None,
            )
            for _ in range(count)
        ]
        session.add_all(rows)
        session.flush()
        if leased_to is not None:
            expires = utcnow() + timedelta(hours=1)
            session.add_all(Lease(run_id=row.id, holder=leased_to, expires_at=expires) for row in rows)
        return [row.id for row in rows]


def events(db: Database, run_id: int | None = None) -> list[AuditEvent]:
    with db.transaction() as session:
        query = select(AuditEvent).order_by(AuditEvent.seq)
        if run_id is not None:
            query = query.where(AuditEvent.run_id == run_id)
        return list(session.scalars(query))


def actions(db: Database, run_id: int | None = None) -> list[str]:
    return [event.action for event in events(db, run_id)]


def verify_chain(db: Database) -> audit.ChainReport:
    with db.transaction() as session:
        return audit.verify(session)


def bundled_entries() -> list[dict[str, Any]]:
    """The bundled catalogue's entries as plain data, to copy and break in a test."""
    raw = yaml.safe_load(bundled_path().read_text(encoding="utf-8"))
    return copy.deepcopy(raw["experiments"])


def bundled_entry(experiment_id: str) -> dict[str, Any]:
    return next(entry for entry in bundled_entries() if entry["id"] == experiment_id)


def write_catalogue(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"experiments": entries}, sort_keys=False), encoding="utf-8")
    return path
