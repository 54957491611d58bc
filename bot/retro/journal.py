"""A run as a Chaos Toolkit journal (the JSON ``chaos run`` writes), so tools that read journals read chaosbot runs.

Any run can be written this way, whatever its adapter. The mapping:

- ``experiment``: the catalogue entry as an experiment: its hypothesis, one steady-state probe per stop
  condition (its threshold as the tolerance), the fault's injection as the method's one action, its revert as
  the one rollback;
- ``steady_states``: ``before`` and ``after`` hold each condition's last sample before the fault and after the
  revert, ``during`` every sample taken while the fault was on; ``tolerance_met`` is whether it was inside;
- ``run``: the injection, from the inject to the revert; ``rollbacks``: the revert, or, when the adapter
  reported its steps (a Chaos Toolkit experiment's rollbacks), one entry per step with its status, duration
  and error (as ``exception``), laid end to end up to the recorded revert;
- ``experiment.extensions``: a ``chaosbot`` extension with the Alertmanager silences the run made, if any;
- ``status``: ``completed``, ``aborted`` (a person, a stop condition or chaosbot stopped it), ``failed``, or
  ``interrupted`` (its controller was lost); ``deviated``: the hypothesis was refuted.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from adapters.base import RevertStep
from bot.records.models import MeasurementPhase
from bot.retro.models import ConditionReport, Ending, Point, Retrospective, Verdict
from bot.runs.models import Run
from storage.db import Database

STATUS = {
    Ending.COMPLETED: "completed",
    Ending.STOP_CONDITION: "aborted",
    Ending.ABORTED: "aborted",
    Ending.SYSTEM_ABORT: "aborted",
    Ending.CONTROLLER_LOST: "interrupted",
    Ending.FAILED: "failed",
    Ending.NOT_RUN: "failed",
}


def run_journal(db: Database, run_id: int, *, zone: ZoneInfo) -> dict[str, Any]:
    """``chaosbot report run RUN-n --format ctk-journal``."""
    from bot.retro.service import build

    retro = build(db, run_id, zone=zone)
    with db.transaction() as session:
        run = session.get(Run, run_id)
        fault = (run.experiment or {}).get("fault", {}) if run is not None else {}
    return ctk_journal(retro, adapter=str(fault.get("adapter", "unknown")))


def ctk_journal(retro: Retrospective, *, adapter: str) -> dict[str, Any]:
    """The journal of one run, built from its retrospective (the record the engine wrote)."""
    window = retro.window
    start = window.start if window else None
    end = window.end if window else None
    fault_start = window.fault_start if window else None
    fault_end = window.fault_end if window else None
    probes = [_probe(condition) for condition in retro.conditions]
    inject = {"type": "action", "name": f"inject {adapter} fault", "provider": _provider(adapter, "inject")}
    revert = {"type": "action", "name": f"revert {adapter} fault", "provider": _provider(adapter, "revert")}
    steps = [_step_activity(adapter, step) for step in retro.rollbacks]
    experiment: dict[str, Any] = {
        "title": f"{retro.label} · {retro.experiment_id} {retro.title}",
        "description": retro.hypothesis,
        "tags": ["chaosbot", retro.experiment_id, retro.environment, *(["dry-run"] if retro.rehearsal else [])],
        "steady-state-hypothesis": {"title": retro.hypothesis, "probes": probes},
        "method": [inject],
        "rollbacks": steps or [revert],
    }
    if retro.silences:
        silences = [{"id": s.silence_id, "matchers": s.matchers, "status": s.status} for s in retro.silences]
        experiment["extensions"] = [{"name": "chaosbot", "silences": silences}]
    return {
        "chaoslib-version": _chaoslib_version(),
        "platform": platform.platform(),
        "node": platform.node(),
        "experiment": experiment,
        "start": _iso(start),
        "status": STATUS[retro.ending],
        "deviated": retro.verdict is Verdict.REFUTED,
        "steady_states": {
            "before": _steady_state(retro.conditions, MeasurementPhase.BASELINE),
            "after": _steady_state(retro.conditions, MeasurementPhase.RECOVERY) if fault_end else None,
            "during": [
                _sample_run(c, p) for c in retro.conditions for p in c.points if p.phase is MeasurementPhase.FAULT
            ],
        },
        "run": [_activity_run(inject, fault_start, fault_end)] if fault_start else [],
        "rollbacks": _rollback_runs(retro, steps, fault_end) or _whole_revert(revert, fault_end),
        "end": _iso(end),
        "duration": (end - start).total_seconds() if start and end else None,
    }


def _step_activity(adapter: str, step: RevertStep) -> dict[str, Any]:
    return {"type": "action", "name": step.name, "provider": _provider(adapter, "rollback")}


def _rollback_runs(
    retro: Retrospective, activities: list[dict[str, Any]], done: datetime | None
) -> list[dict[str, Any]]:
    """One run per reported rollback step; only durations are recorded, so they end at the revert's record."""
    if done is None or not activities:
        return []
    runs, start = [], done - timedelta(seconds=sum(step.duration_seconds for step in retro.rollbacks))
    for activity, step in zip(activities, retro.rollbacks, strict=True):
        end = start + timedelta(seconds=step.duration_seconds)
        run = {**_activity_run(activity, start, end), "status": "succeeded" if step.succeeded else "failed"}
        if step.error:
            run["exception"] = [step.error]
        runs.append(run)
        start = end
    return runs


def _whole_revert(revert: dict[str, Any], done: datetime | None) -> list[dict[str, Any]]:
    return [_activity_run(revert, done, done)] if done else []


def _probe(condition: ConditionReport) -> dict[str, Any]:
    return {
        "type": "probe",
        "name": condition.name,
        "tolerance": condition.threshold,
        "provider": {"type": "python", "module": "chaosbot.probes", "func": condition.kind, "arguments": {}},
    }


def _provider(adapter: str, func: str) -> dict[str, Any]:
    return {"type": "python", "module": f"chaosbot.adapters.{adapter}", "func": func, "arguments": {}}


def _steady_state(conditions: tuple[ConditionReport, ...], phase: MeasurementPhase) -> dict[str, Any] | None:
    runs: list[dict[str, Any]] = []
    for condition in conditions:
        points = [p for p in condition.points if p.phase is phase]
        runs.extend(_sample_run(condition, p) for p in points[-1:])  # the last sample of each
    if not runs:
        return None
    return {"steady_state_met": all(run["tolerance_met"] for run in runs), "probes": runs}


def _sample_run(condition: ConditionReport, point: Point) -> dict[str, Any]:
    activity = _probe(condition)
    return {
        **_activity_run(activity, point.at, point.at),
        "status": "succeeded" if point.value is not None else "failed",
        "output": point.value,
        "tolerance_met": point.ok,
    }


def _activity_run(activity: dict[str, Any], start: datetime | None, end: datetime | None) -> dict[str, Any]:
    return {
        "activity": activity,
        "output": None,
        "start": _iso(start),
        "status": "succeeded",
        "end": _iso(end),
        "duration": (end - start).total_seconds() if start and end else None,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None  # as Chaos Toolkit writes them


def _chaoslib_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("chaostoolkit-lib")
    except Exception:
        return None
