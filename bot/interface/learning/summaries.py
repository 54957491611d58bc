"""Monthly and quarterly summaries in the channel: ``/chaos report [YYYY-MM | YYYY-Qn]`` on demand, and the
scheduled posts on the first working day (``post_due``, every minute on every replica, each claimed once).

The figures come from ``bot.reports`` (computed in SQL); here they become blocks, a quarter's trend chart is
uploaded into the summary's thread, and each run is linked to its thread (links fetched after the summary's
transaction, never inside it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.interface.conversation import Conversation
from bot.interface.render import Renderer
from bot.interface.runs.messages import Block, Message, context, header, section
from bot.interface.surface import DeliveryFailed, Request
from bot.reports import chart
from bot.reports.flows import Reports, record_posted
from bot.reports.periods import Period, PeriodKind
from bot.reports.schedule import DueSummary
from bot.reports.summary import Recovery, Summary
from bot.retro.flows import RetroPoster
from bot.schedule import firings
from bot.vocabulary import format_local, format_seconds, run_label
from bot.words import Person, Words
from storage.db import Database, utcnow

log = logging.getLogger(__name__)

RUNS_LISTED = 50
SECTION_BUDGET = 2900
SUMMARY_LEASE = timedelta(minutes=5)
Link = Callable[[int], str | None]


def summary_message(summary: Summary, zone: ZoneInfo, say: Renderer) -> Message:
    """A summary as blocks: runs, hypotheses, aborts, recovery, action items, trend and learnings (a quarter),
    entries not run in 90 days, and each run linked to its thread (a month)."""
    title = _title(summary)
    blocks: list[Block] = [header(title), context(f"As of {format_local(summary.as_of, zone)}")]
    blocks.append(section(_runs_text(summary)))
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
        blocks.extend(_sections("*Trend*", lines))
    if summary.kind is PeriodKind.QUARTER:
        blocks.extend(_sections("*Key learnings*", _learning_lines(summary, say)))
    if summary.not_run:
        lines = [
            f"• {entry.experiment_id}: "
            + (f"last run {format_local(entry.last_started, zone)}" if entry.last_started else "never run")
            for entry in summary.not_run
        ]
        blocks.extend(_sections("*Not run in 90 days*", lines))
    if summary.runs:
        blocks.extend(_sections("*Each run*", _run_lines(summary, zone, say)))
    text = f"{title}: {summary.runs_total} runs; hypotheses {summary.hypotheses.refuted} refuted."
    return Message(text=text, blocks=blocks[:50])


def _title(summary: Summary) -> str:
    if summary.kind is PeriodKind.MONTH:
        return f"Chaos experiments, {summary.period.title}"
    return f"Chaos experiments: quarterly update, {summary.period.title}"


def _runs_text(summary: Summary) -> str:
    if not summary.runs_total:
        return "*Runs*: none were planned in this period."
    h = summary.hypotheses
    lines = [
        f"*Runs*: {summary.runs_total} ({', '.join(f'{c.count} {c.name}' for c in summary.outcomes)})",
        f"*Hypotheses*: {h.held} held, {h.refuted} refuted, {h.not_tested} not tested",
    ]
    if summary.aborts:
        lines.append(f"*Aborts*: {', '.join(f'{c.count} {c.name}' for c in summary.aborts)}")
        lines += [f"• {' '.join(c.name.split())[:200]} ({c.count})" for c in summary.abort_reasons]
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


def _run_lines(summary: Summary, zone: ZoneInfo, say: Renderer) -> list[str]:
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


def _sections(title: str, lines: list[str]) -> list[Block]:
    blocks, current = [], title
    for line in lines:
        if len(current) + 1 + len(line) > SECTION_BUDGET:
            blocks.append(section(current))
            current = line[:SECTION_BUDGET]
        else:
            current = f"{current}\n{line}"
    blocks.append(section(current))
    return blocks


class Summaries:
    """Posts summaries through an outlet (Slack's Web API, or the console) that can also upload a chart."""

    def __init__(
        self,
        db: Database,
        reports: Reports,
        *,
        outlet: RetroPoster[Message],
        render: Renderer,
        zone: ZoneInfo,
        channel: str,
        holder: str,
        link: Link = lambda _run_id: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.reports = reports
        self.outlet = outlet
        self.render = render
        self.zone = zone
        self.channel = reports.reporting.channel or channel
        self.holder = holder
        self.link = link
        self.clock = clock

    def summary(self, period: Period) -> Summary:
        """The summary with each listed run linked to its thread (links fetched outside the transaction)."""
        found = self.reports.summary(period, runs_limit=RUNS_LISTED)
        return replace(found, runs=[replace(line, link=self.link(line.run_id)) for line in found.runs])

    def post(self, channel: str, period: Period) -> tuple[str, str]:
        """Post the summary of ``period`` in ``channel``; a quarter's trend chart goes in its thread."""
        summary = self.summary(period)
        where, ts = self.outlet.post(channel, summary_message(summary, self.zone, self.render))
        if summary.trend:
            trend = chart.draw(summary)
            uploaded = self.outlet.upload(
                where,
                ts,
                trend.png,
                filename=f"chaos-{period.label}-trend.png",
                title=f"Chaos experiments, {period.title}: the quarter's trend",
                alt_text=f"Runs by outcome, hypotheses refuted and action items opened per month of {period.title}",
            )
            if not uploaded:
                self.outlet.post(where, Message(text="The trend chart could not be attached."), thread_ts=ts)
        return where, ts

    def post_due(self) -> list[str]:
        """Post the scheduled summaries that are due (every minute, every replica); the keys this one posted."""
        posted = []
        for due in self.reports.due():
            try:
                if firings.once(
                    self.db,
                    kind=due.kind,
                    key=due.key,
                    due_at=due.due_at,
                    holder=self.holder,
                    lease=SUMMARY_LEASE,
                    now=self.clock(),
                    action=lambda due=due: self._post_scheduled(due),  # type: ignore[misc]  # bound per loop turn
                ):
                    posted.append(due.key)
            except Exception:
                log.exception("could not post the %s summary %s; it is tried again after a back-off", due.kind, due.key)
        return posted

    def _post_scheduled(self, due: DueSummary) -> None:
        channel, ts = self.post(self.channel, due.period)
        with self.db.transaction() as session:
            record_posted(session, period=due.period, channel=channel, message_ts=ts, at=self.clock())


class ReportCommand:
    """``/chaos report [YYYY-MM | YYYY-Qn]``: the summary, posted where it was asked for."""

    def __init__(self, talk: Conversation, summaries: Summaries) -> None:
        self.talk = talk
        self.summaries = summaries

    def __call__(self, request: Request, args: list[str]) -> None:
        period = self.summaries.reports.period(" ".join(args) or None)
        channel = request.channel or self.summaries.channel
        try:
            self.summaries.post(channel, period)
        except DeliveryFailed as exc:  # not invited to that channel: the person still gets the figures
            log.info("could not post the %s summary in %s: %s", period.label, channel, exc.reason)
            summary = self.summaries.summary(period)
            self.talk.reply(request, summary_message(summary, self.summaries.zone, self.talk.say))
