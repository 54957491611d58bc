"""The learning desk's messages: a run's retrospective (in the run's thread) and its one-line channel summary,
the monthly and quarterly summaries, the action item form and ``/chaos actions``' list.

Built from the core's plain data (``Retrospective``, ``Summary``, ``ItemView``) through a ``Renderer`` (Slack
mentions with typed text escaped, or names for the console). Kept within Slack's limits: ≤ 50 blocks,
≤ 3000 characters per section.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from bot import chart_process
from bot.actions.flows import ItemView
from bot.actions.models import WHAT_MAX
from bot.interface import ids
from bot.interface.ids import ADD_ACTION
from bot.interface.kit import Block, Message, button, context, header, plain, section, sections
from bot.interface.metadata import ItemRef, RunRef
from bot.interface.render import SLACK, Renderer
from bot.records.models import MeasurementPhase
from bot.reports.periods import PeriodKind
from bot.reports.summary import Recovery, Summary
from bot.retro.chart import chart_alt_text, draw
from bot.retro.flows import RetroRenderers
from bot.retro.models import (
    ConditionReport,
    PhaseStats,
    Retrospective,
    TimelineEntry,
    Verdict,
)
from bot.vocabulary import format_date, format_elapsed, format_local, format_seconds, run_label
from bot.words import Person, Words, who

MAX_BLOCKS = 50
MAX_CONDITIONS = 10
VERDICT_EMOJI = {
    Verdict.HELD: ":large_green_circle:",
    Verdict.REFUTED: ":red_circle:",
    Verdict.NOT_TESTED: ":white_circle:",
}
PHASE_NAMES = {
    MeasurementPhase.BASELINE: "Before",
    MeasurementPhase.FAULT: "During",
    MeasurementPhase.RECOVERY: "After",
}
CHART_MISSING = "The chart could not be attached."
DEFAULT_DUE = timedelta(days=14)
LISTED = 40  # items per /chaos actions answer: each is one block, and a message takes 50


def retrospective_message(retro: Retrospective, render: Renderer = SLACK, *, chart_missing: bool = False) -> Message:
    """The retrospective as blocks people can scan: verdict, timeline, stop conditions, recovery, gaps,
    action items, links, and an "Add action item" button."""
    blocks: list[Block] = [header(f"Retrospective · {retro.label} · {retro.experiment_id} {retro.title}")]
    blocks.append(section(_verdict_text(retro, render)))
    blocks.append(context(_facts(retro, render)))
    if chart_missing:  # near the top: the trimming of a very long retrospective never drops it
        blocks.append(context(f":warning: {CHART_MISSING}"))
    blocks.append({"type": "divider"})
    zones = ", ".join(dict.fromkeys(entry.abbreviation for entry in retro.timeline)) or retro.zone
    blocks.extend(sections(f"*Timeline* ({render(zones)})", _timeline_lines(retro.timeline, render)))
    blocks.extend(_condition_blocks(retro.conditions, render))
    blocks.append(section(f"*Recovery against the RTO* {_recovery_mark(retro)}\n{render(retro.recovery.text)}"))
    if retro.rollbacks:
        blocks.extend(sections("*Rollbacks*", _rollback_lines(retro, render)))
    gaps = [f"• {render(gap)}" for gap in retro.gaps] or ["None: everything planned was measured."]
    blocks.extend(sections("*Gaps*", gaps))
    blocks.extend(sections("*Action items*", _action_lines(retro, render)))
    if retro.silences:
        silences = [f"• `{render(s.silence_id)}` {render(s.matchers)}: {render(s.status)}" for s in retro.silences]
        blocks.extend(sections("*Alertmanager silences* (the alerts it was expected to fire)", silences))
    if retro.links:
        links = [f"• <{_safe_url(link.url)}|{render(link.title)}>" for link in retro.links]
        blocks.extend(sections("*Dashboards, logs and traces* (for the run's window)", links))
    blocks = blocks[: MAX_BLOCKS - 1]
    blocks.append(
        {"type": "actions", "elements": [button("Add action item", ADD_ACTION, RunRef(run=retro.run_id).dump())]}
    )
    return Message(text=_fallback(retro, render), blocks=blocks)


def retro_renderers(render: Renderer = SLACK, *, with_chart: bool = True) -> RetroRenderers[Message]:
    """The pieces ``bot.retro.flows.post_retrospective`` needs, for Slack (or the console, with its renderer)."""
    return RetroRenderers(
        message=lambda retro, missing: retrospective_message(retro, render, chart_missing=missing),
        summary=lambda retro, link: summary_line(retro, render, link=link),
        chart=(lambda retro: chart_process.draw(draw, retro).png) if with_chart else None,
        alt_text=chart_alt_text,
    )


def summary_line(retro: Retrospective, render: Renderer = SLACK, *, link: str | None = None) -> Message:
    """One line for the channel, linking to the retrospective in the run's thread."""
    text = _fallback(retro, render)
    if link:
        text += f" <{_safe_url(link)}|Retrospective>"
    return Message(text=text, blocks=[section(text)])


# -- parts ---------------------------------------------------------------------------------------


def _fallback(retro: Retrospective, render: Renderer) -> str:
    """The notification text (also what screen readers and old clients show)."""
    emoji = VERDICT_EMOJI[retro.verdict]
    head = f"{emoji} {retro.label} ({retro.experiment_id}, {render(retro.environment)}) {retro.ending.value}"
    return f"{head}: *hypothesis {retro.verdict.value}*. {render(retro.recovery.text)}"


def _verdict_text(retro: Retrospective, render: Renderer) -> str:
    emoji = VERDICT_EMOJI[retro.verdict]
    return f"{emoji} *Hypothesis {retro.verdict.value}.* {render(retro.why)}\n>{render(retro.hypothesis)}"


def _facts(retro: Retrospective, render: Renderer) -> str:
    facts = [render(retro.environment), render(Words.of("owner ", who(retro.owner))), retro.ending.value]
    if retro.rehearsal:
        facts.append("rehearsal (dry run)")
    return " · ".join(facts)


def _timeline_lines(entries: Sequence[TimelineEntry], render: Renderer) -> list[str]:
    lines, day = [], ""
    for entry in entries:
        if entry.day != day:
            day = entry.day
            lines.append(f"*{day}*")
        lines.append(f"`{entry.clock}` {render(entry.what)}")
    return lines or ["Nothing was recorded."]


def _condition_blocks(conditions: Sequence[ConditionReport], render: Renderer) -> list[Block]:
    if not conditions:
        return [section("*Stop conditions*\nNone: this experiment watches nothing, so nothing was measured.")]
    blocks = [section(_condition_text(c, render)) for c in conditions[:MAX_CONDITIONS]]
    if len(conditions) > MAX_CONDITIONS:
        blocks.append(context(f"{len(conditions) - MAX_CONDITIONS} more stop conditions: see the Markdown report."))
    return blocks


def _condition_text(condition: ConditionReport, render: Renderer) -> str:
    mark = f" :rotating_light: breached ({condition.breaches} outside)" if condition.breached else ""
    head = f"*{render(condition.name)}* · threshold `{render(condition.threshold)}`{mark}"
    rows = [f"{'':7}{'n':>4}{'p50':>10}{'p95':>10}{'worst':>10}  outside"]
    rows += [_stats_row(PHASE_NAMES[phase], condition.phases[phase], condition.unit) for phase in MeasurementPhase]
    return head + "\n```" + "\n".join(rows) + "```"


def _stats_row(name: str, stats: PhaseStats, unit: str) -> str:
    values = "".join(f"{_number(v, unit):>10}" for v in (stats.p50, stats.p95, stats.worst))
    errors = f", {stats.errors} errors" if stats.errors else ""
    return f"{name:7}{stats.samples:>4}{values}  {stats.failing}{errors}"


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} {unit}" if unit else f"{value:.3g}"


def _recovery_mark(retro: Retrospective) -> str:
    met = retro.recovery.met
    return ":white_check_mark: met" if met else (":x: missed" if met is False else "· not measured")


def _rollback_lines(retro: Retrospective, render: Renderer) -> list[str]:
    lines = []
    for step in retro.rollbacks:
        took = format_elapsed(step.duration_seconds)
        if step.succeeded:
            lines.append(f"• :white_check_mark: {render(step.name)}: succeeded in {took}")
        else:
            lines.append(f"• :x: {render(step.name)}: *failed* after {took}: {render(step.error or 'no error text')}")
    return lines


def _action_lines(retro: Retrospective, render: Renderer) -> list[str]:
    if not retro.action_items:
        return ["None yet: add one with the button below."]
    lines = []
    for item in retro.action_items:
        status = "done" if item.done else (f"due {format_date(item.due_on)}" if item.due_on else "open")
        what = f"<{_safe_url(item.link)}|{render(item.what)}>" if item.link else render(item.what)
        lines.append(f"• {item.label} {what}: {render(Words.of(who(item.owner)))}, {status}")
    return lines


def _safe_url(url: str) -> str:
    """A URL inside ``<url|text>``: the characters that would end the link are percent-encoded."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~-._")


# -- summaries ---------------------------------------------------------------------------------


def summary_message(summary: Summary, zone: ZoneInfo, say: Renderer) -> Message:
    """A summary as blocks: runs, hypotheses, aborts, recovery, action items, trend and learnings (a quarter),
    entries not run in 90 days, and each run linked to its thread (a month)."""
    title = _summary_title(summary)
    blocks: list[Block] = [header(title), context(f"As of {format_local(summary.as_of, zone)}")]
    blocks.append(section(_runs_text(summary, say)))
    blocks.append(section(_recovery_text(summary.recovery)))
    a = summary.actions
    blocks.append(
        section(
            f"*Action items*: {a.opened} opened and {a.done} done in the period; "
            f"{a.open} open at its end, {a.overdue} of them overdue."
        )
    )
    if summary.trend:
        lines = [
            f"`{m.period}` {m.runs} runs ({m.completed} completed, {m.aborted} aborted, {m.failed} failed), "
            f"{m.refuted} refuted, {m.actions_opened} action items opened"
            for m in summary.trend
        ]
        blocks.extend(sections("*Trend*", lines))
    if summary.kind is PeriodKind.QUARTER:
        blocks.extend(sections("*Key learnings*", _learning_lines(summary, say)))
    if summary.not_run:
        lines = [
            f"• {entry.experiment_id}: "
            + (f"last run {format_local(entry.last_started, zone)}" if entry.last_started else "never run")
            for entry in summary.not_run
        ]
        blocks.extend(sections("*Not run in 90 days*", lines))
    if summary.runs:
        blocks.extend(sections("*Each run*", _summary_run_lines(summary, zone, say)))
    text = f"{title}: {summary.runs_total} runs; hypotheses {summary.hypotheses.refuted} refuted."
    return Message(text=text, blocks=blocks[:50])


def _summary_title(summary: Summary) -> str:
    if summary.kind is PeriodKind.MONTH:
        return f"Chaos experiments, {summary.period.title}"
    return f"Chaos experiments: quarterly update, {summary.period.title}"


def _runs_text(summary: Summary, say: Renderer) -> str:
    if not summary.runs_total:
        return "*Runs*: none were planned in this period."
    h = summary.hypotheses
    lines = [
        f"*Runs*: {summary.runs_total} ({', '.join(f'{c.count} {c.name}' for c in summary.outcomes)})",
        f"*Hypotheses*: {h.held} held, {h.refuted} refuted, {h.not_tested} not tested",
    ]
    if summary.aborts:
        lines.append(f"*Aborts*: {', '.join(f'{c.count} {c.name}' for c in summary.aborts)}")
        lines += [f"• {say(' '.join(c.name.split())[:200])} ({c.count})" for c in summary.abort_reasons]
    return "\n".join(lines)


def _recovery_text(recovery: Recovery) -> str:
    if not recovery.measured or recovery.mean_seconds is None or recovery.mean_rto_seconds is None:
        return "*Recovery against RTO*: nothing was measured."
    text = (
        f"*Recovery against RTO*: mean {format_seconds(recovery.mean_seconds)} against a mean RTO of "
        f"{format_seconds(recovery.mean_rto_seconds)}; met {recovery.met}, missed {recovery.missed} "
        f"({recovery.measured} measured)."
    )
    if recovery.worst_run_id is not None and recovery.worst_seconds is not None:
        rto = recovery.worst_rto_seconds or 0.0
        verdict = "missed by" if recovery.worst_seconds > rto else "within it by"
        text += (
            f"\nWorst: {run_label(recovery.worst_run_id)}, {format_seconds(recovery.worst_seconds)} against "
            f"{format_seconds(rto)} ({verdict} {format_seconds(abs(recovery.worst_seconds - rto))})."
        )
    return text


def _learning_lines(summary: Summary, say: Renderer) -> list[str]:
    if not summary.learnings:
        return ["No hypothesis was refuted this quarter."]
    lines = []
    for learning in summary.learnings:
        times = "once" if learning.refuted == 1 else f"{learning.refuted} times"
        line = f"• *{learning.experiment_id}*: hypothesis refuted {times}"
        if learning.last_breach:
            line += f" (last: {run_label(learning.last_run_id)}, {say(learning.last_breach[:200])})"
        lines.append(line + f"; {learning.items_total} action items, {learning.items_open} still open.")
        for item in learning.items:
            what = f"<{item.backlog_url}|{say(item.what)}>" if item.backlog_url else say(item.what)
            lines.append(f"    ◦ AI-{item.item_id} {what} ({say(Words.of(Person(item.owner)))}, {item.status})")
    return lines


def _summary_run_lines(summary: Summary, zone: ZoneInfo, say: Renderer) -> list[str]:
    held = {True: "held", False: "refuted", None: "not tested"}
    lines = []
    for line in summary.runs:
        label = f"<{line.link}|{run_label(line.run_id)}>" if line.link else run_label(line.run_id)
        lines.append(
            f"• {label} {line.experiment_id} {say(line.environment)}, {format_local(line.planned_start, zone)}: "
            f"{line.state}, hypothesis {held[line.hypothesis_held]}"
        )
    if len(summary.runs) < summary.runs_total:
        lines.append(f"… and {summary.runs_total - len(summary.runs)} more (`chaosbot report` lists them all).")
    return lines


# -- action items ------------------------------------------------------------------------------


def action_item_modal(label: str, ref: RunRef, today: date) -> Block:
    """What, owner (a user picker) and due date; the block ids are the core's field names."""
    return {
        "type": "modal",
        "callback_id": ids.ACTION_ITEM_SUBMIT,
        "private_metadata": ref.dump(),
        "title": plain("Add action item", 24),
        "submit": plain("Add", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section(f"A follow-up from *{label}*. It is tracked here and filed in the team's backlog."),
            {
                "type": "input",
                "block_id": "what",
                "label": plain("What needs doing"),
                "element": {"type": "plain_text_input", "action_id": "value", "max_length": WHAT_MAX},
            },
            {
                "type": "input",
                "block_id": "owner",
                "label": plain("Owner"),
                "element": {"type": "users_select", "action_id": "value"},
            },
            {
                "type": "input",
                "block_id": "due",
                "label": plain("Due"),
                "element": {
                    "type": "datepicker",
                    "action_id": "value",
                    "initial_date": (today + DEFAULT_DUE).isoformat(),
                },
            },
        ],
    }


def items_message(items: list[ItemView], say: Renderer, *, total: int, overdue: int, mine: bool = False) -> Message:
    """Open action items, overdue first (the core's order), each with a Done button; ``total`` and ``overdue``
    are the true counts (the list may be cut)."""
    title = "Your open action items" if mine else "Open action items"
    if not items:
        text = f"{title}: none. :tada:"
        return Message(text=text, blocks=[section(text)])
    blocks: list[Block] = [header(title)]
    if overdue:
        blocks.append(context(f":rotating_light: {overdue} overdue"))
    for item in items[:LISTED]:
        blocks.append(
            section(_item_line(item, say), accessory=button("Done", ids.ITEM_DONE, ItemRef(item=item.id).dump()))
        )
    shown = min(len(items), LISTED)
    if total > shown:
        blocks.append(context(f"… and {total - shown} more, due later (`chaosbot export` lists them all)."))
    return Message(text=f"{title}: {total} ({overdue} overdue)", blocks=blocks)


def _item_line(item: ItemView, say: Renderer) -> str:
    mark = ":rotating_light: *overdue* " if item.overdue else ""
    what = f"<{item.backlog_url}|{say(item.what)}>" if item.backlog_url else say(item.what)
    owner = say(Words.of(Person(item.owner)))
    due = format_date(item.due_on, weekday=True)
    return f"{mark}*{item.label}* {what}\n{owner} · due {due} · from {item.run_label}"
