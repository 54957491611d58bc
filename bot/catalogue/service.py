"""Loading and validating a catalogue file, with errors that name file, entry, field and problem."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from adapters.base import AdapterParamsError
from adapters.registry import UnknownAdapterError, adapter_class
from bot.catalogue.models import Catalogue, Experiment, StopCondition

BUNDLED = "experiments.yml"


class CatalogueError(Exception):
    """Every problem found in one catalogue file, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))


def bundled_path() -> Path:
    return Path(str(resources.files("bot.catalogue").joinpath(BUNDLED)))


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load ``path`` (or the bundled playbook catalogue) and validate every entry and its fault parameters."""
    source = path or bundled_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(str(source), [f"cannot read the file: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise CatalogueError(str(source), [f"not valid YAML: {exc}"]) from None
    return parse_catalogue(raw, source=str(source))


def parse_catalogue(raw: Any, *, source: str) -> Catalogue:
    if not isinstance(raw, dict) or not isinstance(raw.get("experiments"), list):
        raise CatalogueError(source, ["expected a mapping with a list under 'experiments'"])
    problems: list[str] = []
    experiments: list[Experiment] = []
    first_seen: dict[str, int] = {}
    for index, entry in enumerate(raw["experiments"]):
        label = _entry_label(entry, index)
        if label in first_seen:
            problems.append(f"{label}: id: appears twice (entries #{first_seen[label] + 1} and #{index + 1})")
            continue
        first_seen.setdefault(label, index)
        try:
            experiment = Experiment.model_validate(entry)
        except ValidationError as exc:
            problems.extend(f"{label}: {line}" for line in _describe(exc.errors()))
            continue
        experiment = _with_paths(experiment, Path(source).parent)
        fault_problems = _check_fault(experiment)
        problems.extend(f"{label}: {line}" for line in fault_problems)
        if not fault_problems:
            experiment = _with_adapter_conditions(experiment)
        experiments.append(experiment)
    if not problems:
        try:
            return Catalogue(experiments=experiments)
        except ValidationError as exc:
            problems.extend(_describe(exc.errors()))
    raise CatalogueError(source, problems)


def _entry_label(entry: Any, index: int) -> str:
    if isinstance(entry, dict) and isinstance(label := entry.get("id"), str):
        return label
    return f"entry #{index + 1}"


def _describe(errors: Iterable[Any]) -> list[str]:
    lines = []
    for error in errors:
        # Pydantic puts the union member's tag in the path (probe.http.url); it reads better without it.
        path = ".".join(
            str(part) for part in error["loc"] if part not in ("http", "prometheus", "alerts", "chaostoolkit")
        )
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{path or '(entry)'}: {message}")
    return lines


def _with_paths(experiment: Experiment, folder: Path) -> Experiment:
    """A fault parameter that names a file (``Adapter.path_params``) is read relative to the catalogue's folder."""
    try:
        names = getattr(adapter_class(experiment.fault.adapter), "path_params", ())
    except UnknownAdapterError:
        return experiment
    params = dict(experiment.fault.params)
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value and not value.startswith("${") and not Path(value).is_absolute():
            params[name] = str((folder / value).resolve())
    if params == experiment.fault.params:
        return experiment
    return experiment.model_copy(update={"fault": experiment.fault.model_copy(update={"params": params})})


def _with_adapter_conditions(experiment: Experiment) -> Experiment:
    """Stop conditions the fault brings along (a Chaos Toolkit experiment's steady-state probes), after the
    entry's own; one the entry already names is not added twice."""
    derive = getattr(adapter_class(experiment.fault.adapter), "stop_conditions", None)
    if derive is None:
        return experiment
    named = {condition.name for condition in experiment.stop_conditions}
    extra = [StopCondition.model_validate(c) for c in derive(experiment.fault.params) if c["name"] not in named]
    if not extra:
        return experiment
    return experiment.model_copy(update={"stop_conditions": [*experiment.stop_conditions, *extra]})


def _check_fault(experiment: Experiment) -> list[str]:
    try:
        adapter_class(experiment.fault.adapter).validate(experiment.fault.params)
    except UnknownAdapterError as exc:
        return [f"fault.adapter: {exc}"]
    except AdapterParamsError as exc:
        problem = exc.message.split(": ", 1)[-1].removeprefix("Value error, ")
        return [f"fault.params.{exc.field}: {problem}"]
    return []
