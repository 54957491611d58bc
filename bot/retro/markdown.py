"""A retrospective as Markdown, for ``chaosbot report run RUN-n --format md``, the runbooks and the change log."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from zoneinfo import ZoneInfo

from bot.records.models import MeasurementPhase
from bot.retro.models import ConditionReport, Retrospective
from bot.retro.service import ActionItemSource, build
from bot.vocabulary import format_elapsed
from bot.words import Words, who
from storage.db import Database

PHASES = {
    MeasurementPhase.BASELINE: "Before (baseline)",
    MeasurementPhase.FAULT: "During (fault)",
    MeasurementPhase.RECOVERY: "After (recovery)",
}


def render_markdown(retro: Retrospective, names: Mapping[str, str] | None = None) -> str:
    """The whole retrospective; ``names`` maps user ids to display names (``@U123`` when unknown)."""
    text = _Text(names or {})
    parts = [
        f"# Retrospective: {retro.label} · {retro.experiment_id} {text(retro.title)}",
        f"**Hypothesis {retro.verdict.value}.** {text(retro.why)}",
        _facts(retro, text),
        f"## Timeline ({retro.zone})",
        _timeline(retro, text),
        "## Stop conditions",
        "\n\n".join(_condition(c, text) for c in retro.conditions) or "None: nothing was measured.",
        "## Recovery against the RTO",
        text(retro.recovery.text),
        *(["## Rollbacks", _rollbacks(retro, text)] if retro.rollbacks else []),
        "## Gaps",
        "\n".join(f"- {text(gap)}" for gap in retro.gaps) or "None: everything planned was measured.",
        "## Action items",
        _action_items(retro, text),
    ]
    if retro.silences:
        silences = "\n".join(f"- {text(s.silence_id)} ({text(s.matchers)}): {text(s.status)}" for s in retro.silences)
        parts += ["## Alertmanager silences (the alerts it was expected to fire)", silences]
    if retro.links:
        links = "\n".join(f"- [{text(link.title)}]({link.url})" for link in retro.links)
        parts += ["## Dashboards, logs and traces", links]
    return "\n\n".join(parts) + "\n"


class _Text:
    """Words and typed text as Markdown: people by name, characters that would become markup escaped."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def __call__(self, value: Words | str, *, cell: bool = False) -> str:
        words = value if isinstance(value, Words) else Words.of(value)
        escape: Callable[[str], str] = _cell if cell else _inline
        return words.render(
            person=lambda p: "@" + self.names.get(p.user_id, p.user_id),
            group=lambda g: "@" + self.names.get(g.group_id, g.group_id),
            text=escape,
        )


def _inline(text: str) -> str:
    for char in "\\`*_<>[]":
        text = text.replace(char, "\\" + char)
    return text


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|").replace("\n", " ")


def _facts(retro: Retrospective, text: _Text) -> str:
    rows = [
        ("Hypothesis", text(retro.hypothesis, cell=True)),
        ("Experiment", f"{retro.experiment_id} {text(retro.title, cell=True)}"),
        ("Environment", text(retro.environment, cell=True)),
        ("Owner", text(Words.of(_person(retro.owner)), cell=True)),
        ("Ended", f"{retro.ending.value} ({retro.state})"),
        ("Rehearsal", "yes (dry run)" if retro.rehearsal else "no"),
    ]
    if retro.window is not None:
        rows.append(("Window (UTC)", f"{retro.window.start:%Y-%m-%d %H:%M:%S} to {retro.window.end:%Y-%m-%d %H:%M:%S}"))
    return "| | |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)


def _timeline(retro: Retrospective, text: _Text) -> str:
    if not retro.timeline:
        return "Nothing was recorded."
    rows = [f"| {entry.local} | {text(entry.what, cell=True)} |" for entry in retro.timeline]
    return "| When | What |\n|---|---|\n" + "\n".join(rows)


def _condition(condition: ConditionReport, text: _Text) -> str:
    head = f"### {text(condition.name)}\n\nThreshold: `{condition.threshold}`."
    if condition.breached:
        head += f" **Breached**: {condition.breaches} samples outside the threshold during the fault."
    table = "| Phase | Samples | p50 | p95 | Worst | Outside threshold | Probe errors |\n|---|---|---|---|---|---|---|"
    for phase in MeasurementPhase:
        stats = condition.phases[phase]
        values = " | ".join(_number(v, condition.unit) for v in (stats.p50, stats.p95, stats.worst))
        table += f"\n| {PHASES[phase]} | {stats.samples} | {values} | {stats.failing} | {stats.errors} |"
    return f"{head}\n\n{table}"


def _rollbacks(retro: Retrospective, text: _Text) -> str:
    rows = [
        f"| {text(step.name, cell=True)} | {'succeeded' if step.succeeded else 'failed'} | "
        f"{format_elapsed(step.duration_seconds)} | {text(step.error or '', cell=True)} |"
        for step in retro.rollbacks
    ]
    return "| Rollback | Result | Took | Error |\n|---|---|---|---|\n" + "\n".join(rows)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} {unit}" if unit else f"{value:.4g}"


def _action_items(retro: Retrospective, text: _Text) -> str:
    if not retro.action_items:
        return "None."
    lines = []
    for item in retro.action_items:
        status = "done" if item.done else (f"due {item.due_on:%Y-%m-%d}" if item.due_on else "open")
        what = f"[{text(item.what)}]({item.link})" if item.link else text(item.what)
        lines.append(f"- {item.label} {what}: {text(Words.of(_person(item.owner)))}, {status}")
    return "\n".join(lines)


def _person(user_id: str) -> Words:
    return Words.of(who(user_id))


def run_report(
    db: Database,
    run_id: int,
    *,
    zone: ZoneInfo,
    names: Mapping[str, str] | None = None,
    action_items: ActionItemSource | None = None,
) -> str:
    """``chaosbot report run RUN-n --format md``: the run's retrospective as Markdown."""
    return render_markdown(build(db, run_id, zone=zone, action_items=action_items), names)
