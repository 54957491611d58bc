"""Exporting the experiment record for the change log and compliance: runs with their outcome, and audit events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.actions.service import counts_by_run
from bot.alerting.silences import silence_ids_by_run
from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.records.models import Outcome
from bot.runs.models import RAN, Run
from bot.vocabulary import format_seconds
from storage.db import Database


def run_row(
    run: Run, outcome: Outcome | None, items: tuple[int, int] = (0, 0), silences: list[str] | None = None
) -> dict[str, Any]:
    """One run for the change log: what ran, who approved it, how it ended, the verdict on its hypothesis,
    its recovery against the RTO, its action items (total, still open) and its Alertmanager silence ids."""
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
        "verdict": _verdict(run, outcome),
        "recovery_vs_rto": _recovery_vs_rto(outcome),
        "action_items": items[0],
        "action_items_open": items[1],
        "silences": silences or [],
    }


def _verdict(run: Run, outcome: Outcome | None) -> str | None:
    """held, refuted or not tested for a run that ran; None for one that never started."""
    if run.state not in RAN:
        return None
    if outcome is None or outcome.hypothesis_held is None:
        return "not tested"
    return "held" if outcome.hypothesis_held else "refuted"


def _recovery_vs_rto(outcome: Outcome | None) -> str | None:
    """``met by 4.0 s`` / ``missed by 2.5 s``; None when no recovery was measured."""
    if outcome is None or outcome.recovery_seconds is None or outcome.rto_seconds is None:
        return None
    margin = outcome.rto_seconds - outcome.recovery_seconds
    return f"{'met' if margin >= 0 else 'missed'} by {format_seconds(abs(margin))}"


def export_rows(db: Database, what: str) -> list[dict[str, Any]]:
    with db.transaction() as session:
        if what == "events":
            return [audit.event_row(e) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        outcomes = {o.run_id: o for o in session.scalars(select(Outcome))}
        runs = list(session.scalars(select(Run).order_by(Run.id)))
        items = counts_by_run(session, run_ids=[run.id for run in runs])
        silences = silence_ids_by_run(session)
        return [run_row(run, outcomes.get(run.id), items.get(run.id, (0, 0)), silences.get(run.id)) for run in runs]
