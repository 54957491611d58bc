"""Block Kit for a run's retrospective (posted in the run's thread) and its one-line channel summary.

Built from ``bot.retro.models.Retrospective`` only, through a ``Renderer`` (Slack mentions with typed text
escaped, or names for the console). Kept within Slack's limits: ≤ 50 blocks, ≤ 3000 characters per section.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from bot.interface.ids import ADD_ACTION
from bot.interface.metadata import RunRef
from bot.interface.render import SLACK, Renderer
from bot.interface.runs.messages import Block, Message, button, context, header, section
from bot.interface.surface import Surface
from bot.retro.chart import chart_alt_text, draw
from bot.retro.flows import RetroRenderers
from bot.retro.models import (
    ConditionReport,
    Phase,
    PhaseStats,
    Retrospective,
    TimelineEntry,
    Verdict,
)
from bot.words import Words, who

MAX_BLOCKS = 50
SECTION_BUDGET = 2900  # under Slack's 3000, leaving room for a heading line
MAX_CONDITIONS = 10
VERDICT_EMOJI = {
    Verdict.HELD: ":large_green_circle:",
    Verdict.REFUTED: ":red_circle:",
    Verdict.NOT_TESTED: ":white_circle:",
}
PHASE_NAMES = {Phase.BASELINE: "Before", Phase.FAULT: "During", Phase.RECOVERY: "After"}
CHART_MISSING = "The chart could not be attached."


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
    blocks.extend(_sections(f"*Timeline* ({render(zones)})", _timeline_lines(retro.timeline, render)))
    blocks.extend(_condition_blocks(retro.conditions, render))
    blocks.append(section(f"*Recovery against the RTO* {_recovery_mark(retro)}\n{render(retro.recovery.text)}"))
    gaps = [f"• {render(gap)}" for gap in retro.gaps] or ["None: everything planned was measured."]
    blocks.extend(_sections("*Gaps*", gaps))
    blocks.extend(_sections("*Action items*", _action_lines(retro, render)))
    if retro.links:
        links = [f"• <{_safe_url(link.url)}|{render(link.title)}>" for link in retro.links]
        blocks.extend(_sections("*Dashboards, logs and traces* (for the run's window)", links))
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
        chart=(lambda retro: draw(retro).png) if with_chart else None,
        alt_text=chart_alt_text,
    )


def summary_line(retro: Retrospective, render: Renderer = SLACK, *, link: str | None = None) -> Message:
    """One line for the channel, linking to the retrospective in the run's thread."""
    text = _fallback(retro, render)
    if link:
        text += f" <{_safe_url(link)}|Retrospective>"
    return Message(text=text, blocks=[section(text)])


def summary_words(retro: Retrospective) -> Words:
    """The same line as plain ``Words``, for a surface without mrkdwn."""
    return Words.of(
        f"{retro.label} ({retro.experiment_id}, {retro.environment}) {retro.ending.value}: ",
        f"hypothesis {retro.verdict.value}. {retro.recovery.text}",
    )


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
    rows += [_stats_row(PHASE_NAMES[phase], condition.phases[phase], condition.unit) for phase in Phase]
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


def _action_lines(retro: Retrospective, render: Renderer) -> list[str]:
    if not retro.action_items:
        return ["None yet: add one with the button below."]
    lines = []
    for item in retro.action_items:
        status = "done" if item.done else (f"due {item.due_on:%d %b %Y}" if item.due_on else "open")
        what = f"<{_safe_url(item.link)}|{render(item.what)}>" if item.link else render(item.what)
        lines.append(f"• {item.label} {what}: {render(Words.of(who(item.owner)))}, {status}")
    return lines


def _sections(title: str, lines: Iterable[str]) -> list[Block]:
    """One or more sections of whole lines, each under Slack's 3000-character limit."""
    blocks, current = [], title
    for line in lines:
        line = line if len(line) <= SECTION_BUDGET else line[: SECTION_BUDGET - 1] + "…"
        if len(current) + 1 + len(line) > SECTION_BUDGET:
            blocks.append(section(current))
            current = line
        else:
            current = f"{current}\n{line}"
    blocks.append(section(current))
    return blocks


def _safe_url(url: str) -> str:
    """A URL inside ``<url|text>``: the characters that would end the link are percent-encoded."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~-._")


class SurfaceRetroOutlet:
    """A ``RetroPoster`` over any ``Surface`` without file uploads (the console): the chart is written to
    ``chart_dir`` and its path posted in the thread; without a directory there is no chart."""

    def __init__(self, surface: Surface, chart_dir: Path | None = None) -> None:
        self.surface = surface
        self.chart_dir = chart_dir

    def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> tuple[str, str]:
        return self.surface.post(channel, message, thread_ts=thread_ts)

    def update(self, channel: str, ts: str, message: Message) -> None:
        self.surface.update(channel, ts, message)

    def upload(
        self, channel: str, thread_ts: str | None, content: bytes, *, filename: str, title: str, alt_text: str
    ) -> bool:
        if self.chart_dir is None:
            return False
        try:
            self.chart_dir.mkdir(parents=True, exist_ok=True)
            path = self.chart_dir / filename
            path.write_bytes(content)
        except OSError:
            return False
        self.surface.post(channel, notice_message(f":bar_chart: {title}: {path}"), thread_ts=thread_ts)
        return True

    def permalink(self, channel: str, ts: str) -> str | None:
        return None


def notice_message(text: str) -> Message:
    return Message(text=text, blocks=[section(text)])
