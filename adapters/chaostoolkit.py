"""A team's Chaos Toolkit experiment as a chaosbot fault: its method is the fault, its rollbacks the revert.

Parameters: ``experiment``, the path of a Chaos Toolkit experiment (JSON or YAML); a relative path is read
from the catalogue's folder. Chaos Toolkit's own library (chaostoolkit-lib) loads and validates it and runs
every activity; chaosbot adds its plans, approvals, kill switch, lease and retrospective around it.

- **validate** (catalogue load): Chaos Toolkit's validation of the hypothesis, method and rollbacks (a python
  provider whose module is missing names the extension package to install), and a refusal of what chaosbot
  does not run: ``controls``, ``background`` or ``ref`` activities, per-activity ``dry``, and ``runtime``
  strategies. The ``configuration`` and ``secrets`` blocks are checked for shape only: their values come from
  the environment when an activity runs, and never reach the database, the audit log or a message.
- **inject** runs the method: the activities up to and including the first action before it returns (a
  failure there fails the start, and the engine reverts), the rest on a worker thread, pauses included.
- **revert** stops that worker at the next activity boundary (an activity already running finishes: Chaos
  Toolkit cannot interrupt one in general) and runs the rollbacks at once, in the calling thread, without
  waiting for the method. It works in any process from the handle alone, so the replica that reverts after a
  crash or a SIGTERM runs them. A failed rollback raises, and the engine raises the loud alert. Each
  rollback's result (name, succeeded or failed, duration, error text with the secrets' values masked) is returned,
  or attached to the error, for the run's record and its retrospective.
- A Chaos Toolkit rollback cannot expire by itself: preflight says the run relies on the lease.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from adapters._common import params_as
from adapters.base import (
    Adapter,
    AdapterError,
    AdapterParams,
    AdapterParamsError,
    FaultHandle,
    FaultState,
    FaultStatus,
    Preflight,
    RevertStep,
)

log = logging.getLogger(__name__)

UNSUPPORTED_KEYS = {
    "controls": "Chaos Toolkit controls (chaosbot's approvals, lease and probes take their place)",
    "runtime": "runtime strategies (chaosbot decides when probes and rollbacks run)",
}
UNSUPPORTED_ACTIVITY_KEYS = {
    "background": "background activities (they could not be stopped at an activity boundary)",
    "ref": "activity references (write the activity out)",
    "dry": "per-activity dry mode (use `/chaos start --dry-run`)",
    "controls": "activity controls",
}


class ChaosToolkitParams(AdapterParams):
    experiment: str


@dataclass
class _Method:
    """One run's method on its worker thread; ``stop`` ends it at the next activity boundary."""

    stop: threading.Event = field(default_factory=threading.Event)
    ran: list[dict[str, Any]] = field(default_factory=list)
    thread: threading.Thread | None = None


class ChaosToolkitAdapter(Adapter):
    """Runs a Chaos Toolkit experiment's method as the fault and its rollbacks as the revert.

    Parameters:

    - ``experiment`` (required): the path of the Chaos Toolkit experiment, JSON or YAML; a relative path is
      read from the catalogue file's folder. Its ``configuration`` and ``secrets`` come from the environment
      as Chaos Toolkit resolves them, when each activity runs.
    """

    name = "chaostoolkit"
    Params = ChaosToolkitParams
    #: Parameters that are file paths: the catalogue loader reads a relative one from the catalogue's folder.
    path_params: ClassVar[tuple[str, ...]] = ("experiment",)

    @classmethod
    def stop_conditions(cls, params: Any) -> list[dict[str, Any]]:
        """The experiment's steady-state probes, as stop conditions the catalogue adds to the entry."""
        path = str(params["experiment"])
        return [
            {"name": name[:80], "probe": {"kind": "chaostoolkit", "experiment": path, "probe": name}}
            for name in steady_state_probes(path)
        ]

    # Methods running in this process, by run id. Process-wide on purpose: adapters are created per call.
    _methods: ClassVar[dict[str, _Method]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def validate(cls, params: Any) -> AdapterParams:
        p = params_as(ChaosToolkitParams, super().validate(params))
        experiment = load_experiment(p.experiment, field_name="experiment")
        _require_modules(experiment)
        problems = unsupported(experiment)
        if problems:
            raise AdapterParamsError("experiment", "chaosbot does not run " + "; ".join(problems))
        _validate(experiment)
        return p

    def preflight(self, params: AdapterParams) -> Preflight:
        p = params_as(ChaosToolkitParams, params)
        try:
            experiment = load_experiment(p.experiment)
            _validate(experiment)
            _settings(experiment)
        except AdapterError as exc:
            return Preflight(ok=False, detail=exc.message)
        method, rollbacks = _names(experiment.get("method")), _names(experiment.get("rollbacks"))
        return Preflight(
            ok=True,
            detail=(
                f"Chaos Toolkit experiment '{experiment.get('title')}': method {method or 'empty'}; "
                f"rollbacks {rollbacks or 'none'}. A rollback cannot expire by itself: this run relies on "
                "chaosbot's lease (a lost controller is reverted by another replica)."
            ),
        )

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        p = params_as(ChaosToolkitParams, params)
        return FaultHandle(adapter=self.name, run_id=run_id, data={"experiment": p.experiment, "ran": []})

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        p = params_as(ChaosToolkitParams, params)
        experiment = load_experiment(p.experiment)
        configuration, secrets = _settings(experiment)
        activities = list(experiment.get("method") or [])
        first_action = next((i for i, a in enumerate(activities) if a.get("type") == "action"), len(activities) - 1)
        method = _Method()
        with self._lock:
            self._methods[handle.run_id] = method
        for activity in activities[: first_action + 1]:
            result = _run(experiment, activity, configuration, secrets, method)
            if result is not None and _status(result) != "succeeded":
                reason = _without_secrets(_reason(result), secrets)
                raise AdapterError(f"the method's activity '{activity.get('name')}' failed: {reason}")
        rest = activities[first_action + 1 :]
        if rest:
            method.thread = threading.Thread(
                target=_run_all,
                args=(experiment, rest, configuration, secrets, method),
                name=f"chaosbot-ctk-{handle.run_id}",
                daemon=True,
            )
            method.thread.start()
        digest = hashlib.sha256(Path(p.experiment).read_bytes()).hexdigest()
        return replace(handle, data={**handle.data, "sha256": digest, "ran": _summary(method.ran)})

    def revert(self, params: AdapterParams, handle: FaultHandle) -> list[RevertStep]:
        p = params_as(ChaosToolkitParams, params)
        with self._lock:
            method = self._methods.pop(handle.run_id, None)
        if method is not None:
            method.stop.set()  # the method stops at its next activity boundary; nobody waits for it
        experiment = load_experiment(p.experiment)
        configuration, secrets = _settings(experiment)
        steps = [_rollback(experiment, a, configuration, secrets) for a in experiment.get("rollbacks") or []]
        for step in steps:
            outcome = "succeeded" if step.succeeded else "failed"
            log.info("chaos toolkit rollback %r of run %s: %s", step.name, handle.run_id, outcome)
        failed = [f"'{step.name}' ({step.error})" for step in steps if not step.succeeded]
        if failed:
            raise AdapterError("Chaos Toolkit rollbacks failed: " + ", ".join(failed), steps=steps)
        return steps

    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        with self._lock:
            method = self._methods.get(handle.run_id)
        if method is None:
            return FaultStatus(FaultState.UNKNOWN, "a Chaos Toolkit method has no state to ask; the rollbacks tell")
        running = method.thread is not None and method.thread.is_alive()
        return FaultStatus(FaultState.ACTIVE, "method running" if running else "method done, rollbacks not run yet")


@dataclass(frozen=True)
class ProbeResult:
    """One run of a steady-state probe: within its tolerance or not, and the number to chart, if any."""

    ok: bool
    value: float | None
    detail: str
    error: bool = False


def steady_state_probes(path: str) -> list[str]:
    """The names of the experiment's steady-state probes: chaosbot watches each as a stop condition."""
    hypothesis = load_experiment(path).get("steady-state-hypothesis") or {}
    return [str(p["name"]) for p in hypothesis.get("probes") or [] if isinstance(p, dict) and p.get("name")]


def sample_probe(path: str, name: str) -> ProbeResult:
    """Run the steady-state probe ``name`` once and judge it with its own tolerance (Chaos Toolkit's rules:
    exact values, lists, ranges, regex, JSONPath and probe tolerances)."""
    from chaoslib.hypothesis import within_tolerance

    try:
        experiment = load_experiment(path)
        configuration, secrets = _settings(experiment)
    except AdapterError as exc:
        return ProbeResult(False, None, exc.message, error=True)
    probes = (experiment.get("steady-state-hypothesis") or {}).get("probes") or []
    activity = next((p for p in probes if isinstance(p, dict) and p.get("name") == name), None)
    if activity is None:
        return ProbeResult(False, None, f"the experiment has no steady-state probe '{name}' any more", error=True)
    result = _run(experiment, activity, configuration, secrets, None)
    if result is None or result.get("status") != "succeeded":
        reason = _without_secrets(_reason(result), secrets) if result else "skipped"
        return ProbeResult(False, None, f"probe failed: {reason}", error=True)
    output = result.get("output")
    tolerance = activity.get("tolerance")
    within = bool(within_tolerance(tolerance, output, configuration=configuration, secrets=secrets))
    detail = f"{_output(output)} {'within' if within else 'outside'} tolerance {_shown(tolerance)}"
    return ProbeResult(within, _number(output), detail)


def _number(output: Any) -> float | None:
    """What a chart can show: a number, an HTTP or process status, a boolean as 1/0."""
    if isinstance(output, bool):
        return 1.0 if output else 0.0
    if isinstance(output, int | float):
        return float(output)
    if isinstance(output, dict) and isinstance(output.get("status"), int):
        return float(output["status"])
    return None


def _output(output: Any) -> str:
    """A probe's output as people read it: an HTTP status or exit status, not the whole response."""
    if isinstance(output, dict) and isinstance(output.get("status"), int):
        return f"HTTP {output['status']}" if "headers" in output else f"exit status {output['status']}"
    return _shown(output)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def unsupported(experiment: dict[str, Any]) -> list[str]:
    """What the experiment uses that chaosbot refuses to run (instead of silently ignoring it)."""
    found = [why for key, why in UNSUPPORTED_KEYS.items() if experiment.get(key)]
    activities = [
        *((experiment.get("steady-state-hypothesis") or {}).get("probes") or []),
        *(experiment.get("method") or []),
        *(experiment.get("rollbacks") or []),
    ]
    for key, why in UNSUPPORTED_ACTIVITY_KEYS.items():
        named = [str(a.get("name") or a.get("ref") or "?") for a in activities if isinstance(a, dict) and a.get(key)]
        if named:
            found.append(f"{why}: {', '.join(named)}")
    return found


def load_experiment(path: str, *, field_name: str | None = None) -> dict[str, Any]:
    from chaoslib.exceptions import ChaosException
    from chaoslib.loader import parse_experiment_from_file

    if not Path(path).is_file():
        message = f"the Chaos Toolkit experiment {path} does not exist"
        raise AdapterParamsError(field_name, message) if field_name else AdapterError(message)
    try:
        experiment = parse_experiment_from_file(path)
    except (ChaosException, ValueError, OSError) as exc:
        message = f"{path} is not a readable Chaos Toolkit experiment: {exc}"
        raise AdapterParamsError(field_name, message) if field_name else AdapterError(message) from None
    if not isinstance(experiment, dict):
        raise AdapterError(f"{path} is not a Chaos Toolkit experiment (expected a mapping)")
    return experiment


def _require_modules(experiment: dict[str, Any]) -> None:
    """A python provider's module must be installed: name the extension package when it is not."""
    for activity in _activities(experiment):
        provider = activity.get("provider") or {}
        module = str(provider.get("module", "")) if provider.get("type") == "python" else ""
        if module and importlib.util.find_spec(module.split(".")[0]) is None:
            package = module.split(".")[0]
            raise AdapterParamsError(
                "experiment",
                f"activity '{activity.get('name')}' needs the Python module {module}, which is not installed "
                f"(install the Chaos Toolkit extension that provides {package}, "
                f"e.g. chaostoolkit-{package.removeprefix('chaos')})",
            )


def _validate(experiment: dict[str, Any]) -> None:
    """Chaos Toolkit's own validation, on the experiment without the values its settings take from the
    environment at run time (they are read when an activity runs)."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    _require_modules(experiment)
    shape = copy.deepcopy(experiment)
    shape.pop("configuration", None)
    shape.pop("secrets", None)
    try:
        ensure_experiment_is_valid(shape)
    except ChaosException as exc:
        raise AdapterParamsError("experiment", f"Chaos Toolkit says the experiment is invalid: {exc}") from None


def _settings(experiment: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Configuration and secrets as Chaos Toolkit resolves them (from the environment), at the moment of use."""
    from chaoslib.configuration import load_configuration
    from chaoslib.exceptions import ChaosException
    from chaoslib.secret import load_secrets

    try:
        configuration = load_configuration(experiment.get("configuration") or {})
        secrets = load_secrets(experiment.get("secrets") or {}, configuration)
    except (ChaosException, KeyError) as exc:
        raise AdapterError(
            f"the experiment's configuration or secrets cannot be loaded: {type(exc).__name__}: {exc}"
        ) from None
    return dict(configuration or {}), dict(secrets or {})


def _run(
    experiment: dict[str, Any],
    activity: dict[str, Any],
    configuration: dict[str, Any],
    secrets: dict[str, Any],
    method: _Method | None,
) -> dict[str, Any] | None:
    """One activity through Chaos Toolkit, its pauses waited out here so a stop interrupts them."""
    from chaoslib.activity import execute_activity

    pauses = activity.get("pauses") or {}
    stop = method.stop if method is not None else threading.Event()
    if _paused(pauses.get("before"), stop):
        return None
    bare = {k: v for k, v in activity.items() if k != "pauses"}
    result: dict[str, Any] = execute_activity(experiment, bare, configuration, secrets, dry=None)
    if method is not None:
        method.ran.append(result)
    _paused(pauses.get("after"), stop)
    return result


def _rollback(
    experiment: dict[str, Any], activity: dict[str, Any], configuration: dict[str, Any], secrets: dict[str, Any]
) -> RevertStep:
    """Run one rollback activity; what it did, with its error text cleared of the experiment's secret values."""
    began = time.monotonic()
    try:
        result = _run(experiment, activity, configuration, secrets, None)
    except Exception as exc:  # a rollback that raises is a failed step, and the next one still runs
        result = {"status": "failed", "exception": [f"{type(exc).__name__}: {exc}"]}
    status = _status(result)
    took = float(result["duration"]) if result and isinstance(result.get("duration"), int | float) else None
    error = None if status == "succeeded" else _without_secrets(_reason(result) if result else status, secrets)
    return RevertStep(
        name=str(activity.get("name") or "?"),
        succeeded=status == "succeeded",
        duration_seconds=took if took is not None else time.monotonic() - began,
        error=error,
    )


def _without_secrets(text: str, secrets: dict[str, Any]) -> str:
    """``text`` with every resolved secret value replaced: error texts are stored, posted and exported."""
    for value in sorted(_strings(secrets), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if len(value) >= 3 else []
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def _run_all(
    experiment: dict[str, Any],
    activities: list[dict[str, Any]],
    configuration: dict[str, Any],
    secrets: dict[str, Any],
    method: _Method,
) -> None:
    for activity in activities:
        if method.stop.is_set():
            log.info("chaos toolkit method stopped before '%s': the run is being reverted", activity.get("name"))
            return
        try:
            _run(experiment, activity, configuration, secrets, method)
        except Exception:
            log.exception("chaos toolkit activity '%s' raised", activity.get("name"))


def _paused(seconds: Any, stop: threading.Event) -> bool:
    """Wait ``seconds`` (a number), or less when ``stop`` is set; True when it was."""
    if isinstance(seconds, int | float) and seconds > 0:
        return stop.wait(float(seconds))
    return stop.is_set()


def _activities(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    found = [*(hypothesis.get("probes") or []), *(experiment.get("method") or []), *(experiment.get("rollbacks") or [])]
    return [a for a in found if isinstance(a, dict)]


def _names(activities: Any) -> str:
    return ", ".join(f"'{a.get('name')}'" for a in activities or [] if isinstance(a, dict))


def _summary(ran: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"activity": str(r.get("activity", {}).get("name")), "status": str(r.get("status"))} for r in ran]


def _status(result: dict[str, Any] | None) -> str:
    """Chaos Toolkit's status, except that a process that exits non-zero, or an HTTP action (no tolerance) that
    is answered 400 or more, failed: Chaos Toolkit records both as succeeded (with a warning for the HTTP one),
    and a rollback the backend refused must not pass for a revert."""
    if result is None:
        return "skipped"
    if result.get("status") == "succeeded" and (_exit_status(result) not in (None, 0) or _refused(result)):
        return "failed"
    return str(result.get("status"))


def _exit_status(result: dict[str, Any]) -> Any:
    output, provider = result.get("output"), (result.get("activity") or {}).get("provider") or {}
    return output.get("status") if provider.get("type") == "process" and isinstance(output, dict) else None


def _refused(result: dict[str, Any]) -> int | None:
    """The HTTP status of an action without a tolerance that was answered 400 or more, else None."""
    activity, output = result.get("activity") or {}, result.get("output")
    if (activity.get("provider") or {}).get("type") != "http" or "tolerance" in activity:
        return None
    status = output.get("status") if isinstance(output, dict) else None
    return status if isinstance(status, int) and status >= 400 else None


def _reason(result: dict[str, Any]) -> str:
    if _exit_status(result) not in (None, 0):
        stderr = str((result.get("output") or {}).get("stderr", ""))[:200]
        return f"exited with status {_exit_status(result)}: {stderr}".strip()
    if _refused(result):
        return f"answered HTTP {_refused(result)}"
    lines = result.get("exception") or []
    return (lines[-1].strip() if lines else str(result.get("status")))[:300]
