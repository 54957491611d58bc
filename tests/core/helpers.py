"""Small helpers shared by the lifecycle-core tests: building runs, reading the audit log, writing files."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.catalogue.service import bundled_path
from bot.errors import DomainError
from bot.runs.flows import Lifecycle, PlanRequest
from bot.runs.models import Run, RunState
from storage.db import Database


def said(error: DomainError) -> str:
    """What the core said, with its people and groups marked as values: ``<@U…>`` and ``<!subteam^S…>``.

    (Not the Slack renderer: these tests check that people stay values, not how Slack escapes text.)"""
    return error.words.render(person=lambda p: f"<@{p.user_id}>", group=lambda g: f"<!subteam^{g.group_id}>")


OWNER = "oliver"
STAGING_APPROVERS = ("rita", "sam", "stella")
PRODUCTION_APPROVERS = ("rita", "sam", "stella", "eve")


def plan_run(
    lifecycle: Lifecycle,
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
        planned_start=start,
        rollback_steps=rollback,
        notes=notes,
    )
    return lifecycle.plan(owner, request)


def approve_all(lifecycle: Lifecycle, run_id: int, approvers: tuple[str, ...] = STAGING_APPROVERS) -> Run:
    for approver in approvers:
        lifecycle.approve(approver, run_id)
    return lifecycle.run(run_id)


def approved_run(lifecycle: Lifecycle, **plan: Any) -> Run:
    run = plan_run(lifecycle, **plan)
    return approve_all(lifecycle, run.id)


def running_run(lifecycle: Lifecycle, *, starter: str = OWNER, **plan: Any) -> Run:
    run = approved_run(lifecycle, **plan)
    return lifecycle.begin(starter, run.id)


def run_in_state(lifecycle: Lifecycle, state: RunState) -> Run:
    """A run brought to ``state`` through the lifecycle's own flows (never by writing the row)."""
    if state is RunState.PLANNED:
        return plan_run(lifecycle)
    if state is RunState.APPROVED:
        return approved_run(lifecycle)
    if state is RunState.RUNNING:
        return running_run(lifecycle)
    if state in (RunState.COMPLETED, RunState.ABORTED, RunState.FAILED):
        run = running_run(lifecycle)
        return lifecycle.finish(OWNER, run.id, state, reason="done")
    run = plan_run(lifecycle)
    if state is RunState.REJECTED:
        return lifecycle.reject("rita", run.id, "not this week")
    if state is RunState.CANCELLED:
        return lifecycle.cancel(OWNER, run.id, "changed my mind")
    raise ValueError(f"no recipe for {state}")


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
