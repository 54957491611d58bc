"""Exporting the experiment record for the change log and compliance: runs with their outcome, and audit events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.engine.models import Outcome
from bot.runs.models import Run
from storage.db import Database


def run_row(run: Run, outcome: Outcome | None) -> dict[str, Any]:
    return {
        "run": run.label,
        "experiment": run.experiment_id,
        "experiment_hash": run.experiment_hash,
        "title": run.experiment.get("title", ""),
        "environment": run.environment,
        "owner": run.owner,
        "state": run.state,
        "planned_start": run.planned_start.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "ended_by": run.ended_by,
        "end_reason": run.end_reason,
        "approvals": {a.role: a.user_id for a in run.approvals},
        "dry_run": run.dry_run,
        "outcome": outcome.result if outcome else None,
        "hypothesis_held": outcome.hypothesis_held if outcome else None,
        "recovery_seconds": outcome.recovery_seconds if outcome else None,
        "rto_seconds": outcome.rto_seconds if outcome else None,
    }


def export_rows(db: Database, what: str) -> list[dict[str, Any]]:
    with db.transaction() as session:
        if what == "events":
            return [audit.event_row(e) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        outcomes = {o.run_id: o for o in session.scalars(select(Outcome))}
        return [run_row(run, outcomes.get(run.id)) for run in session.scalars(select(Run).order_by(Run.id))]
