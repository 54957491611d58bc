"""Indexes the summaries' SQL needs on tables declared elsewhere (declared here so the runs module stays as is).

- ``runs (planned_start, state)``: a period's runs and their count per state, from the index alone.
- ``runs (experiment_id, started_at)``: each catalogue entry's last start, one index probe per entry.
"""

from __future__ import annotations

from sqlalchemy import Index

from bot.runs.models import Run

RUNS_BY_PLANNED_START = Index("ix_runs_planned_start_state", Run.planned_start, Run.state)
RUNS_BY_EXPERIMENT_START = Index("ix_runs_experiment_id_started_at", Run.experiment_id, Run.started_at)

__all__ = ["RUNS_BY_EXPERIMENT_START", "RUNS_BY_PLANNED_START"]
