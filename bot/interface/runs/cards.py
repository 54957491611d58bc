"""A run as plain data for display: everything one run message or console card shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.catalogue.models import Experiment
from bot.engine.progress import Progress, read_outcome, read_progress
from bot.policy.models import Role
from bot.records.models import Outcome
from bot.runs import service as runs
from bot.runs.core import RunCore
from bot.runs.models import Run
from bot.words import Part


@dataclass(frozen=True)
class RunCard:
    run: Run
    experiment: Experiment
    required: list[Role]
    approvals: dict[Role, str]
    holders: dict[Role, list[Part]]
    progress: Progress | None
    outcome: Outcome | None
    now: datetime

    @property
    def missing(self) -> list[Role]:
        return [role for role in self.required if role not in self.approvals]


def load_card(core: RunCore, run_id: int) -> RunCard:
    """Read through the core and the engine's records, so every replica renders the same card."""
    run = core.queries.run(run_id)
    policy, now = core.policy, core.clock()
    required = policy.required_roles(run.environment) if run.environment in policy.environments else []
    return RunCard(
        run=run,
        experiment=Experiment.model_validate(run.experiment),
        required=required,
        approvals=runs.approvals_by_role(run),
        holders={role: policy.holders(role).who() for role in required},
        progress=read_progress(core.db, run_id, lambda: now),
        outcome=read_outcome(core.db, run_id),
        now=now,
    )
