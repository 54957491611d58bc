"""A summary as Markdown (the sync's notes, the runbooks), CSV (a spreadsheet) or JSON (other tools).

People appear through ``name_of`` (a user id by default); the core writes no chat markup.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from bot.reports.summary import Recovery, RunLine, Summary
from bot.vocabulary import format_local, format_seconds, run_label

FORMATS = ("md", "csv", "json")
NameOf = Callable[[str], str]


def render(summary: Summary, fmt: str, *, zone: ZoneInfo, name_of: NameOf = str) -> str:
    if fmt == "md":
        return to_markdown(summary, zone=zone, name_of=name_of)
    if fmt == "csv":
        return to_csv(summary)
    if fmt == "json":
        return to_json(summary)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# -- JSON ----------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def to_dict(summary: Summary) -> dict[str, Any]:
    document: dict[str, Any] = _plain(asdict(summary))
    document["period"] = {"kind": summary.period.kind.value, "label": summary.period.label}
    return document


def to_json(summary: Summary) -> str:
    return json.dumps(to_dict(summary), indent=2, ensure_ascii=False) + "\n"


# -- CSV -----------------------------------------------------------------------------------------------------


def to_csv(summary: Summary) -> str:
    """Long form, one figure per row: section, name, value, detail."""
    rows: list[tuple[str, str, Any, str]] = [("period", summary.period.kind.value, summary.period.label, "")]
    rows.append(("runs", "total", summary.runs_total, ""))
    rows += [("runs", count.name, count.count, "") for count in summary.outcomes]
    hypotheses = summary.hypotheses
    rows += [
        ("hypotheses", "held", hypotheses.held, ""),
        ("hypotheses", "refuted", hypotheses.refuted, ""),
        ("hypotheses", "not tested", hypotheses.not_tested, ""),
    ]
    rows += [("aborts", count.name, count.count, "") for count in summary.aborts]
    rows += [("abort reasons", count.name, count.count, "") for count in summary.abort_reasons]
    recovery = summary.recovery
    rows += [
        ("recovery", "measured", recovery.measured, ""),
        ("recovery", "mean seconds", _round(recovery.mean_seconds), ""),
        ("recovery", "mean rto seconds", _round(recovery.mean_rto_seconds), ""),
        ("recovery", "met rto", recovery.met, ""),
        ("recovery", "missed rto", recovery.missed, ""),
        ("recovery", "worst seconds", _round(recovery.worst_seconds), _worst_detail(recovery)),
    ]
    actions = summary.actions
    rows += [
        ("action items", "opened", actions.opened, ""),
        ("action items", "done", actions.done, ""),
        ("action items", "open", actions.open, ""),
        ("action items", "overdue", actions.overdue, ""),
    ]
    rows += [
        (
            "not run in 90 days",
            entry.experiment_id,
            entry.last_started.isoformat() if entry.last_started else "never",
            "",
        )
        for entry in summary.not_run
    ]
    rows += [(f"trend {month.period}", name, getattr(month, name), "") for month in summary.trend for name in _TREND]
    rows += [
        ("learnings", learning.experiment_id, learning.refuted, f"{learning.items_total} action items")
        for learning in summary.learnings
    ]
    rows += [("run", run_label(line.run_id), line.state, _run_detail(line)) for line in summary.runs]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "name", "value", "detail"])
    writer.writerows(("" if value is None else value for value in row) for row in rows)
    return buffer.getvalue()


_TREND = ("runs", "completed", "aborted", "failed", "refuted", "actions_opened")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _worst_detail(recovery: Recovery) -> str:
    if recovery.worst_run_id is None:
        return ""
    return f"{run_label(recovery.worst_run_id)}, RTO {_round(recovery.worst_rto_seconds)} s"


def _held(value: bool | None) -> str:
    return {True: "held", False: "refuted", None: "not tested"}[value]


def _run_detail(line: RunLine) -> str:
    parts = [line.experiment_id, line.environment, f"owner {line.owner}", _held(line.hypothesis_held)]
    if line.recovery_seconds is not None and line.rto_seconds is not None:
        parts.append(f"recovered in {line.recovery_seconds:.0f} s of {line.rto_seconds:.0f} s")
    if line.link:
        parts.append(line.link)
    return "; ".join(parts)


# -- Markdown ------------------------------------------------------------------------------------------------


def to_markdown(summary: Summary, *, zone: ZoneInfo, name_of: NameOf = str) -> str:
    period = summary.period
    heading = "Chaos experiments" if period.kind.value == "month" else "Chaos experiments: quarterly update"
    out = [f"# {heading}, {period.title}", "", f"As of {format_local(summary.as_of, zone)}.", ""]
    out += _md_runs(summary)
    out += _md_recovery(summary.recovery)
    out += _md_actions(summary)
    if summary.trend:
        out += ["## Trend", "", "| month | runs | completed | aborted | failed | refuted | action items opened |"]
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        out += [
            f"| {m.period} | {m.runs} | {m.completed} | {m.aborted} | {m.failed} | {m.refuted} | {m.actions_opened} |"
            for m in summary.trend
        ]
        out.append("")
    if period.kind.value == "quarter":
        out += _md_learnings(summary, name_of)
    if summary.not_run:
        out += ["## Not run in 90 days", ""]
        out += [
            f"- {entry.experiment_id}: "
            + (f"last run {format_local(entry.last_started, zone)}" if entry.last_started else "never run")
            for entry in summary.not_run
        ]
        out.append("")
    if summary.runs:
        out += _md_run_list(summary, zone, name_of)
    return "\n".join(out).rstrip() + "\n"


def _md_runs(summary: Summary) -> list[str]:
    h = summary.hypotheses
    out = ["## Runs", ""]
    if not summary.runs_total:
        return [*out, "No runs were planned in this period.", ""]
    out.append(f"{summary.runs_total} runs: " + ", ".join(f"{c.count} {c.name}" for c in summary.outcomes) + ".")
    out += ["", f"Hypotheses: {h.held} held, {h.refuted} refuted, {h.not_tested} not tested.", ""]
    if summary.aborts:
        out.append("Aborts: " + ", ".join(f"{c.count} {c.name}" for c in summary.aborts) + ".")
        out += ["", "Most frequent reasons:"]
        out += [f"- {_one_line(c.name)} ({c.count})" for c in summary.abort_reasons]
        out.append("")
    return out


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def _md_recovery(recovery: Recovery) -> list[str]:
    out = ["## Recovery against RTO", ""]
    if not recovery.measured or recovery.mean_seconds is None or recovery.mean_rto_seconds is None:
        return [*out, "No recovery was measured.", ""]
    out.append(
        f"Mean recovery {format_seconds(recovery.mean_seconds)} against a mean RTO of "
        f"{format_seconds(recovery.mean_rto_seconds)}; RTO met {recovery.met} times, missed {recovery.missed} "
        f"({recovery.measured} measured)."
    )
    if recovery.worst_run_id is not None and recovery.worst_seconds is not None:
        rto = recovery.worst_rto_seconds or 0.0
        verdict = "missed by" if recovery.worst_seconds > rto else "within RTO by"
        out.append(
            f"Worst: {run_label(recovery.worst_run_id)}, {format_seconds(recovery.worst_seconds)} against "
            f"{format_seconds(rto)} ({verdict} {format_seconds(abs(recovery.worst_seconds - rto))})."
        )
    return [*out, ""]


def _md_actions(summary: Summary) -> list[str]:
    a = summary.actions
    return [
        "## Action items",
        "",
        f"{a.opened} opened and {a.done} done in the period; {a.open} open at its end, {a.overdue} of them overdue.",
        "",
    ]


def _md_learnings(summary: Summary, name_of: NameOf) -> list[str]:
    out = ["## Key learnings", ""]
    if not summary.learnings:
        return [*out, "No hypothesis was refuted this quarter.", ""]
    for learning in summary.learnings:
        times = "once" if learning.refuted == 1 else f"{learning.refuted} times"
        line = f"- **{learning.experiment_id}**: hypothesis refuted {times}"
        if learning.last_breach:
            line += f" (last: {run_label(learning.last_run_id)}, {_one_line(learning.last_breach)})"
        out.append(line + f"; {learning.items_total} action items, {learning.items_open} still open.")
        for item in learning.items:
            where = f" {item.backlog_url}" if item.backlog_url else ""
            out.append(f"  - AI-{item.item_id} {item.what} ({name_of(item.owner)}, {item.status}){where}")
    return [*out, ""]


def _md_run_list(summary: Summary, zone: ZoneInfo, name_of: NameOf) -> list[str]:
    out = ["## Each run", "", "| run | planned | experiment | environment | owner | outcome | hypothesis |"]
    out.append("|---|---|---|---|---|---|---|")
    for line in summary.runs:
        label = f"[{run_label(line.run_id)}]({line.link})" if line.link else run_label(line.run_id)
        out.append(
            f"| {label} | {format_local(line.planned_start, zone)} | {line.experiment_id} | {line.environment} "
            f"| {name_of(line.owner)} | {line.state} | {_held(line.hypothesis_held)} |"
        )
    if len(summary.runs) < summary.runs_total:
        out += ["", f"… and {summary.runs_total - len(summary.runs)} more."]
    return [*out, ""]
