"""A run as plain data for display: everything one run message or console card shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.catalogue.models import Experiment
from bot.engine.progress import Progress, read_progress
from bot.policy.models import Policy, Role
from bot.runs import service as runs
from bot.runs.models import Outcome, Run
from storage.db import Database


@dataclass(frozen=True)
class RunCard:
    run: Run
    experiment: Experiment
    required: list[Role]
    approvals: dict[Role, str]
    holders: dict[Role, list[str]]
    progress: Progress | None
    outcome: Outcome | None
    now: datetime

    @property
    def missing(self) -> list[Role]:
        return [role for role in self.required if role not in self.approvals]


def load_card(db: Database, policy: Policy, run_id: int, now: datetime) -> RunCard:
    with db.transaction() as session:
        run = runs.get(session, run_id=run_id)
        outcome = session.get(Outcome, run.id)
    experiment = Experiment.model_validate(run.experiment)
    required = policy.required_roles(run.environment) if run.environment in policy.environments else []
    return RunCard(
        run=run,
        experiment=experiment,
        required=required,
        approvals=runs.approvals_by_role(run),
        holders={role: policy.holders(role).mentions() for role in required},
        progress=read_progress(db, run_id, lambda: now),
        outcome=outcome,
        now=now,
    )
