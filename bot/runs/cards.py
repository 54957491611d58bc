"""A run as plain data for display: everything one run message or console card shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.catalogue.models import Experiment, HttpProbe, StopCondition
from bot.policy.models import Policy, Role
from bot.runs import service as runs
from bot.runs.models import Measurement, Outcome, Run


@dataclass(frozen=True)
class Sample:
    condition: str
    threshold: str
    value: float | None
    ok: bool
    detail: str
    at: datetime


@dataclass(frozen=True)
class RunCard:
    run: Run
    experiment: Experiment
    required: list[Role]
    approvals: dict[Role, str]
    holders: dict[Role, list[str]]
    samples: list[Sample]
    outcome: Outcome | None
    now: datetime

    @property
    def missing(self) -> list[Role]:
        return [role for role in self.required if role not in self.approvals]

    @property
    def elapsed(self) -> timedelta | None:
        if self.run.started_at is None:
            return None
        return (self.run.ended_at or self.now) - self.run.started_at


def threshold_text(condition: StopCondition) -> str:
    probe = condition.probe
    if isinstance(probe, HttpProbe):
        parts = [f"status in {probe.expect_status}"]
        if probe.max_latency_ms is not None:
            parts.append(f"≤ {probe.max_latency_ms:g} ms")
        return ", ".join(parts)
    bounds = []
    if probe.min is not None:
        bounds.append(f"≥ {probe.min:g}")
    if probe.max is not None:
        bounds.append(f"≤ {probe.max:g}")
    return " and ".join(bounds)


def latest_samples(session: Session, run: Run, experiment: Experiment) -> list[Sample]:
    newest = (
        select(Measurement.condition, func.max(Measurement.id).label("id"))
        .where(Measurement.run_id == run.id)
        .group_by(Measurement.condition)
        .subquery()
    )
    rows = {m.condition: m for m in session.scalars(select(Measurement).join(newest, Measurement.id == newest.c.id))}
    samples = []
    for condition in experiment.stop_conditions:
        row = rows.get(condition.name)
        if row is not None:
            samples.append(Sample(condition.name, threshold_text(condition), row.value, row.ok, row.detail, row.at))
    return samples


def load_card(session: Session, policy: Policy, run_id: int, now: datetime) -> RunCard:
    run = runs.get(session, run_id=run_id)
    experiment = Experiment.model_validate(run.experiment)
    required = policy.required_roles(run.environment) if run.environment in policy.environments else []
    return RunCard(
        run=run,
        experiment=experiment,
        required=required,
        approvals=runs.approvals_by_role(run),
        holders={role: policy.holders(role).mentions() for role in required},
        samples=latest_samples(session, run, experiment),
        outcome=session.get(Outcome, run.id),
        now=now,
    )
