"""A catalogue entry drafted from a Chaos Toolkit experiment, for a person to review before it is used.

What the experiment says is taken over: its title, its steady-state hypothesis (as the hypothesis; its probes
become stop conditions when the catalogue loads), its method and its rollbacks in words. What only the team
can decide is filled with a safe default and marked ``# REVIEW``: the environments, the owner, the maximum
duration and the RTO, the expected outcome and the safeguards.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

REVIEW = "# REVIEW: "


def draft_entry(experiment_path: Path, *, experiment_id: str, catalogue_path: Path | None, indent: str = "  ") -> str:
    """The YAML of one catalogue entry (an item of ``experiments:``, indented by ``indent``), marked for review."""
    from adapters.chaostoolkit import load_experiment  # the loader Chaos Toolkit itself uses

    experiment = load_experiment(str(experiment_path))
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    reference = _relative(experiment_path, catalogue_path)
    fields: dict[str, Any] = {
        "id": experiment_id,
        "title": str(experiment.get("title", experiment_path.stem))[:120],
        "hypothesis": str(hypothesis.get("title") or experiment.get("description") or experiment.get("title")),
        "method": _method(experiment),
        "expected_outcome": "The steady-state hypothesis holds throughout and after the method.",
        "safeguards": ["Stop conditions: the experiment's steady-state probes, checked every probe interval."],
        "rollback_steps": ["Run `/chaos abort`: it runs the experiment's rollbacks.", *_rollbacks(experiment)],
        "environments": ["staging"],
        "fault": {"adapter": "chaostoolkit", "params": {"experiment": reference}},
        "max_duration": "5m",
        "rto": "5m",
    }
    body = yaml.safe_dump([fields], sort_keys=False, allow_unicode=True, width=110)
    marks = {
        "  expected_outcome:": "what the team expects to see",
        "  safeguards:": "how the blast radius is limited",
        "  environments:": "where it may run",
        "  max_duration:": "how long the fault may last",
        "  rto:": "how fast the system must recover",
    }
    lines = []
    for line in body.splitlines():
        for prefix, why in marks.items():
            if line.startswith(prefix):
                lines.append(f"  {REVIEW}{why}")
        lines.append(line)
    header = f"# Imported from the Chaos Toolkit experiment {reference}."
    probes = [str(p.get("name")) for p in hypothesis.get("probes") or [] if isinstance(p, dict)]
    if probes:
        header += f" Stop conditions (added at load): {', '.join(probes)}."
    header += " The owner is whoever plans a run."
    return "\n".join(indent + line for line in [header, *lines]) + "\n"


def list_indent(catalogue_path: Path | None) -> str:
    """How the catalogue indents its ``- id:`` items, so an appended entry belongs to the same list."""
    if catalogue_path is None or not catalogue_path.is_file():
        return "  "
    for line in catalogue_path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("- id:"):
            return line[: len(line) - len(line.lstrip())]
    return "  "


def append_entry(catalogue_path: Path, entry: str) -> None:
    text = catalogue_path.read_text(encoding="utf-8")
    separator = "" if text.endswith("\n") else "\n"
    catalogue_path.write_text(f"{text}{separator}\n{entry}", encoding="utf-8")


def _relative(experiment_path: Path, catalogue_path: Path | None) -> str:
    if catalogue_path is None:
        return str(experiment_path.resolve())
    return os.path.relpath(experiment_path.resolve(), catalogue_path.resolve().parent)


def _method(experiment: dict[str, Any]) -> str:
    steps = [
        f"{a.get('type', 'activity')} {a.get('name')}" for a in experiment.get("method") or [] if isinstance(a, dict)
    ]
    description = str(experiment.get("description") or "").strip()
    sentence = f"Chaos Toolkit method: {', then '.join(steps) or 'no activity'}."
    return f"{description} {sentence}".strip()


def _rollbacks(experiment: dict[str, Any]) -> list[str]:
    """Each rollback in words a person could follow by hand."""
    steps = []
    for activity in experiment.get("rollbacks") or []:
        if not isinstance(activity, dict):
            continue
        provider = activity.get("provider") or {}
        kind = provider.get("type")
        if kind == "process":
            how = f"run `{provider.get('path')} {provider.get('arguments', '')}`".replace(" `", " `", 1).strip()
        elif kind == "http":
            how = f"{provider.get('method', 'GET')} {provider.get('url')}"
        elif kind == "python":
            how = f"call {provider.get('module')}.{provider.get('func')}({_arguments(provider.get('arguments'))})"
        else:
            how = "see the experiment"
        steps.append(f"By hand, {activity.get('name')}: {how}")
    return steps


def _arguments(arguments: Any) -> str:
    if isinstance(arguments, dict):
        return ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return "" if arguments is None else repr(arguments)
