"""The runs desk's messages: the run's one message, status, the catalogue, usage, the plan and reject forms,
App Home. Built from plain data (the core's runs and a ``RunCard``); Slack and the console share them.

At most 50 blocks per message and 100 per modal or Home tab.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.catalogue.models import Catalogue, Experiment
from bot.interface import ids
from bot.interface.kit import LABEL_LIMIT, Block, Message, button, context, header, notice, plain, section, sections
from bot.interface.limits import clip_plain
from bot.interface.metadata import HomePage, PlanMeta, RunRef
from bot.interface.render import Renderer
from bot.interface.runs.cards import RunCard
from bot.runs.models import Run, RunState
from bot.runs.queries import Home, Listed, Status
from bot.runs.rules import MAX_TEXT
from bot.vocabulary import format_duration, format_local, format_seconds, run_label
from bot.words import Person, Words, listing, who

__all__ = ["Block", "Message", "notice"]  # re-exported for the desks that answer with a notice

STATE_EMOJI = {
    RunState.PLANNED: ":hourglass_flowing_sand:",
    RunState.APPROVED: ":white_check_mark:",
    RunState.RUNNING: ":red_circle:",
    RunState.COMPLETED: ":checkered_flag:",
    RunState.ABORTED: ":octagonal_sign:",
    RunState.FAILED: ":x:",
    RunState.REJECTED: ":no_entry_sign:",
    RunState.CANCELLED: ":heavy_minus_sign:",
    RunState.EXPIRED: ":zzz:",
}


# -- the run message ---------------------------------------------------------------------------


def run_message(card: RunCard, zone: ZoneInfo, say: Renderer) -> Message:
    """The run's one message in the channel, updated in place on every change."""
    run, experiment = card.run, card.experiment
    state = run.run_state
    title = f"{run.label} · {experiment.id} {experiment.title}"
    blocks: list[Block] = [
        header(title),
        section(f"{STATE_EMOJI[state]} *{say(_state_line(card, zone))}*"),
        section(
            f"*Hypothesis:* {experiment.hypothesis}\n*Method:* {experiment.method}\n"
            f"*Expected outcome:* {experiment.expected_outcome}"
        ),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Environment*\n{run.environment}"},
                {"type": "mrkdwn", "text": f"*Owner*\n{say(Words.of(Person(run.owner)))}"},
                {"type": "mrkdwn", "text": f"*Planned start*\n{format_local(run.planned_start, zone)}"},
                {
                    "type": "mrkdwn",
                    "text": f"*Max duration · RTO*\n{format_duration(experiment.max_duration)}"
                    f" · {format_duration(experiment.rto)}",
                },
            ],
        },
        section("*Safeguards*\n" + "\n".join(f"• {s}" for s in experiment.safeguards)),
        section(f"*Rollback steps*\n{say(run.rollback_steps)}"),
    ]
    if run.notes:
        blocks.append(section(f"*Notes*\n{say(run.notes)}"))
    blocks.append(section(_approvals_text(card, say)))
    blocks.extend(_progress_blocks(card))
    if card.outcome is not None:
        blocks.append(section(_outcome_text(card)))
    actions = _actions(run)
    if actions:
        blocks.append({"type": "actions", "block_id": f"run-{run.id}-actions", "elements": actions})
    blocks.append(context(f"{experiment.id} catalogue entry `{run.experiment_hash[:12]}` · {run.label}"))
    return Message(text=f"{title}: {say(_state_line(card, zone))}", blocks=blocks)


def _state_line(card: RunCard, zone: ZoneInfo) -> Words:
    run = card.run
    state = run.run_state
    if state is RunState.PLANNED:
        return Words.of("Planned: waiting for approval")
    if state is RunState.APPROVED:
        return Words.of("Approved: ready to start")
    if state is RunState.RUNNING:
        dry = " (dry run)" if run.dry_run else ""
        since = format_local(run.started_at or card.now, zone)
        return Words.of(f"Running{dry} since {since}, started by ", who(run.started_by or ""))
    by = Words.of(" by ", who(run.ended_by)) if run.ended_by else Words()
    reason = f": {run.end_reason}" if run.end_reason else ""
    return Words.of(state.value.capitalize(), by, reason)


def _approvals_text(card: RunCard, say: Renderer) -> str:
    lines = ["*Approvals*"]
    for role in card.required:
        if role in card.approvals:
            lines.append(f":white_check_mark: {role.label}: {say(Words.of(Person(card.approvals[role])))}")
        else:
            holders = say(listing(card.holders.get(role, []))) or "nobody"
            lines.append(f":white_square: {role.label} ({holders})")
    return "\n".join(lines)


PHASE = {"starting": "injecting the fault", "fault": "fault active", "recovery": "fault reverted, recovering"}


def _progress_blocks(card: RunCard) -> list[Block]:
    progress = card.progress
    if progress is None:
        return []
    dry = " (dry run)" if progress.dry_run else ""
    lines = [
        f"*Progress*{dry}: {PHASE.get(progress.phase, progress.phase)}, "
        f"{format_duration(progress.elapsed)} of {format_duration(progress.max_duration)}"
    ]
    for condition in progress.conditions:
        mark = {True: ":large_green_circle:", False: ":red_circle:", None: ":white_circle:"}[condition.ok]
        value = f"{condition.value:.4g}" if condition.value is not None else _no_value(condition.at)
        lines.append(f"{mark} {condition.name}: {value} (threshold {condition.threshold}) {condition.detail}".rstrip())
    if not progress.conditions:
        lines.append("No stop conditions: the run ends at its maximum duration.")
    return [section("\n".join(lines))]


def _no_value(sampled_at: datetime | None) -> str:
    return "not sampled yet" if sampled_at is None else "not evaluated"


def _outcome_text(card: RunCard) -> str:
    outcome = card.outcome
    assert outcome is not None
    held = {True: "held", False: "refuted", None: "not evaluated"}[outcome.hypothesis_held]
    recovery = "not measured" if outcome.recovery_seconds is None else format_seconds(outcome.recovery_seconds)
    lines = [
        f"*Outcome:* {outcome.result} · hypothesis {held}",
        f"Recovery {recovery} vs RTO {format_duration(outcome.rto_seconds)}",
    ]
    if outcome.breach:
        lines.append(f"Breach: {outcome.breach}")
    return "\n".join(lines)


ABORT_CONFIRM: Block = {
    "title": plain("Abort this run?", 100),
    "text": {"type": "mrkdwn", "text": "The fault is reverted at once and the run ends as aborted."},
    "confirm": plain("Abort now", 30),
    "deny": plain("Keep running", 30),
    "style": "danger",
}


def _actions(run: Run) -> list[Block]:
    ref = RunRef(run=run.id).dump()
    state = run.run_state
    if state is RunState.PLANNED:
        return [
            button("Approve", ids.APPROVE, ref, "primary"),
            button("Reject", ids.REJECT, ref),
            button("Edit", ids.EDIT, ref),
        ]
    if state is RunState.APPROVED:
        return [
            button("Start", ids.START, ref, "primary"),
            button("Cancel", ids.CANCEL, ref),
            button("Edit", ids.EDIT, ref),
        ]
    if state is RunState.RUNNING:
        return [button("Abort", ids.ABORT, ref, "danger", ABORT_CONFIRM)]
    return []


# -- short messages ----------------------------------------------------------------------------

USAGE = """*chaosbot* runs the playbook's chaos experiments. Commands:
• `/chaos list`: the experiment catalogue
• `/chaos plan CE-03 [staging|production]`: plan a run (opens a form)
• `/chaos status [RUN-n|running]`: active runs (running first), one run, or every running run
• `/chaos start RUN-n [--dry-run [--for 30s]]`: start an approved run; a dry run rehearses, optionally shorter
• `/chaos abort [RUN-n|all] [reason]`: kill switch; `all` also blocks new starts
• `/chaos resume`: release the global kill switch (approvers)
• `/chaos cancel RUN-n [reason]`: withdraw a plan
• `/chaos actions [mine]`: open action items, overdue first, with a Done button
• `/chaos report [YYYY-MM|YYYY-Qn]`: this month's summary, or that month's or quarter's
• `/chaos help`: this text"""


def usage(problem: str | None = None) -> Message:
    text = f":warning: {problem}\n\n{USAGE}" if problem else USAGE
    return Message(text=text, blocks=[section(text)])


CATALOGUE_IN_FULL = 40  # experiments shown with their hypothesis; the rest one line each


def catalogue_message(catalogue: Catalogue) -> Message:
    """``/chaos list``: the first experiments in full, the rest by id and title, so every id can be planned."""
    blocks: list[Block] = [header("Experiment catalogue")]
    for experiment in catalogue.experiments[:CATALOGUE_IN_FULL]:
        blocks.append(
            section(
                f"*{experiment.id}* {experiment.title}\n{experiment.hypothesis}\n"
                f"_{', '.join(experiment.environments)} · {experiment.fault.adapter} · "
                f"max {format_duration(experiment.max_duration)}_"
            )
        )
    rest = catalogue.experiments[CATALOGUE_IN_FULL:]
    if rest:
        lines = [f"*{experiment.id}* {experiment.title}" for experiment in rest]
        blocks.extend(sections(f"*And {len(rest)} more*", lines))
    blocks.append(context("Plan one with `/chaos plan CE-xx`."))
    return Message(text=f"{len(catalogue.experiments)} experiments in the catalogue", blocks=blocks)


# How many runs each list shows; every list that is cut says how many it left out and how to see them.
STATUS_RUNNING = 20  # ``/chaos status``: running runs, each with its Abort button
STATUS_WAITING = 40  # ``/chaos status``: planned and approved runs, one line each
RUNNING_PER_MESSAGE = 45  # ``/chaos status running``: every running run, in as many messages as it takes
HOME_RUNNING = 40  # App Home: running runs per page (Show more shows the next)
HOME_LISTED = 20  # App Home: what waits for your approval, what is coming

KILL_SWITCH_ENGAGED = ":rotating_light: *Global kill switch engaged*: no run can start."
NO_ACTIVE_RUNS = "No active runs. Plan one with `/chaos plan CE-xx`."


def status_message(status: Status, zone: ZoneInfo, say: Renderer) -> Message:
    """``/chaos status``: running runs first, each with its Abort button, then the planned and approved ones;
    true counts, and what a cut list left out."""
    running, waiting = status.running, status.waiting
    blocks: list[Block] = [section(KILL_SWITCH_ENGAGED)] if status.kill_switch else []
    if not running.total and not waiting.total:
        blocks.append(section(NO_ACTIVE_RUNS))
        return Message(text=_text_of(blocks), blocks=blocks)
    blocks.append(section(f"*Running now: {running.total}*" if running.total else "Nothing is running."))
    blocks.extend(_running_row(run, say) for run in running.items)
    if running.left_out:
        blocks.append(
            context(
                f"… and {running.left_out} more running: `/chaos status running` lists every one with its Abort "
                "button (and App Home, with *Show more*)."
            )
        )
    lines = [_waiting_line(run, zone, say) for run in waiting.items]
    blocks.extend(sections(f"*Planned or approved: {waiting.total}* (soonest first)", lines))
    if waiting.left_out:
        blocks.append(context(f"… and {waiting.left_out} more planned or approved."))
    return Message(text=_text_of(blocks), blocks=blocks)


def running_messages(running: list[Run], say: Renderer) -> list[Message]:
    """``/chaos status running``: every running run with its Abort button, ``RUNNING_PER_MESSAGE`` a message."""
    if not running:
        return [notice("Nothing is running.")]
    total, messages = len(running), []
    for first in range(0, total, RUNNING_PER_MESSAGE):
        part = running[first : first + RUNNING_PER_MESSAGE]
        heading = f"*Running now: {total}* · {first + 1} to {first + len(part)} of {total}, newest first"
        blocks = [section(heading), *(_running_row(run, say) for run in part)]
        messages.append(Message(text=_text_of(blocks), blocks=blocks))
    return messages


def _running_row(run: Run, say: Renderer) -> Block:
    return section(
        f":red_circle: *{run.label}* {run.experiment_id} in {run.environment}, started by "
        + say(Words.of(who(run.started_by or ""))),
        accessory=button("Abort", ids.ABORT, RunRef(run=run.id).dump(), "danger", ABORT_CONFIRM),
    )


def _waiting_line(run: Run, zone: ZoneInfo, say: Renderer) -> str:
    return (
        f"{STATE_EMOJI[run.run_state]} *{run.label}* {run.experiment_id} in {run.environment}: "
        f"{run.state}, planned {format_local(run.planned_start, zone)}, owner {say(Words.of(Person(run.owner)))}"
    )


def _text_of(blocks: list[Block]) -> str:
    """The fallback text: what the sections and context lines say, in order."""
    texts: list[str] = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn")
    return "\n".join(texts)


# -- modals ------------------------------------------------------------------------------------


AUTO_START_OPTION: Block = {
    "text": plain("Start automatically at the planned start", 75),
    "description": plain("Only once approved, and if no window or freeze refuses.", 75),
    "value": "auto_start",
}


def plan_modal(
    experiment: Experiment,
    environment: str,
    start: datetime,
    rollback: str,
    meta: PlanMeta,
    *,
    notes: str = "",
    auto_start: bool = True,
) -> Block:
    """The plan form; with ``meta.run`` set it edits that run's plan, filled in with it."""
    options = [{"text": plain(env), "value": env} for env in experiment.environments]
    chosen = next((o for o in options if o["value"] == environment), options[0])
    notes_element: Block = {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": MAX_TEXT}
    if notes:
        notes_element["initial_value"] = clip_plain(notes, MAX_TEXT)
    auto: Block = {"type": "checkboxes", "action_id": "value", "options": [AUTO_START_OPTION]}
    if auto_start:
        auto["initial_options"] = [AUTO_START_OPTION]
    editing = meta.run is not None
    return {
        "type": "modal",
        "callback_id": ids.PLAN_SUBMIT,
        "private_metadata": meta.dump(),
        "title": plain(f"Edit {run_label(meta.run)}" if meta.run is not None else f"Plan {experiment.id}", 24),
        "submit": plain("Save plan" if editing else "Plan run", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section(f"*{experiment.title}*\n{experiment.hypothesis}\n_Method:_ {experiment.method}"),
            {
                "type": "input",
                "block_id": "environment",
                "label": plain("Environment", LABEL_LIMIT),
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "options": options,
                    "initial_option": chosen,
                },
            },
            {
                "type": "input",
                "block_id": "planned_start",
                "label": plain("Planned start", LABEL_LIMIT),
                "hint": plain("Schedule off-peak; the team's time zone applies to messages.", LABEL_LIMIT),
                "element": {
                    "type": "datetimepicker",
                    "action_id": "value",
                    "initial_date_time": int(start.timestamp()),
                },
            },
            {
                "type": "input",
                "block_id": "rollback_steps",
                "label": plain("Rollback steps", LABEL_LIMIT),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": MAX_TEXT,
                    "initial_value": clip_plain(rollback, MAX_TEXT),
                },
            },
            {
                "type": "input",
                "block_id": "notes",
                "optional": True,
                "label": plain("Notes", LABEL_LIMIT),
                "element": notes_element,
            },
            {
                "type": "input",
                "block_id": "auto_start",
                "optional": True,
                "label": plain("Scheduled start", LABEL_LIMIT),
                "element": auto,
            },
            *([context("Saving resets every approval: the plan is approved as written.")] if editing else []),
        ],
    }


def reject_modal(run: Run) -> Block:
    return {
        "type": "modal",
        "callback_id": ids.REJECT_SUBMIT,
        "private_metadata": RunRef(run=run.id).dump(),
        "title": plain(f"Reject {run.label}", 24),
        "submit": plain("Reject", 24),
        "close": plain("Back", 24),
        "blocks": [
            section(f"Rejecting *{run.label}* ({run.experiment_id} in {run.environment}). Tell the owner why."),
            {
                "type": "input",
                "block_id": "reason",
                "label": plain("Reason", LABEL_LIMIT),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": MAX_TEXT,
                },
            },
        ],
    }


# -- App Home ----------------------------------------------------------------------------------


def home_view(data: Home, zone: ZoneInfo, say: Renderer) -> Block:
    """App Home: one page of running runs (each with Abort; **Show more** for the next page), what waits for
    your approval, what is coming; a list that is cut says how many it left out. At most 90 blocks."""
    blocks: list[Block] = [header("chaosbot")]
    if data.kill_switch:
        blocks.append(section(":rotating_light: *Global kill switch engaged*: no run can start until `/chaos resume`."))
    else:
        blocks.append(section(":large_green_circle: Global kill switch released."))
    blocks.append(header("Running now"))
    if not data.running.total:
        blocks.append(context("Nothing is running."))
    blocks.extend(_running_row(run, say) for run in data.running.items)
    blocks.extend(_running_pages(data.running))
    blocks.append(header("Waiting for your approval"))
    if not data.awaiting_you.total:
        blocks.append(context("Nothing waits for you."))
    for run, roles in data.awaiting_you.items:
        blocks.append(
            section(
                f"*{run.label}* {run.experiment_id} in {run.environment}, "
                f"planned {format_local(run.planned_start, zone)}"
                f" · you can approve as {', '.join(r.label for r in roles)}",
                accessory=button("Approve", ids.APPROVE, RunRef(run=run.id).dump(), "primary"),
            )
        )
    if data.awaiting_you.left_out:
        left_out = data.awaiting_you.left_out
        blocks.append(context(f"… and {left_out} more wait for you: each run's message has its Approve button."))
    blocks.append(header("Upcoming"))
    if not data.upcoming.total:
        blocks.append(context("No upcoming runs."))
    for run in data.upcoming.items:
        blocks.append(
            section(
                f"{STATE_EMOJI[run.run_state]} *{run.label}* {run.experiment_id} ({run.state}), "
                f"{format_local(run.planned_start, zone)}"
            )
        )
    if data.upcoming.left_out:
        blocks.append(context(f"… and {data.upcoming.left_out} more planned or approved."))
    return {"type": "home", "blocks": blocks}


def _running_pages(running: Listed[Run]) -> list[Block]:
    """Under a page of running runs that is not all of them: which ones it shows, and the buttons to the rest."""
    if running.left_out <= 0:
        return []
    page = running.offset // HOME_RUNNING
    shown = f"Running runs {running.offset + 1} to {running.offset + len(running.items)} of {running.total}"
    buttons = []
    if running.after:
        buttons.append(button("Show more", ids.HOME_MORE, HomePage(page=page + 1).dump()))
    if running.offset:
        buttons.append(button("Back to the first", ids.HOME_FIRST, HomePage(page=0).dump()))
    return [context(f"{shown}, newest first."), {"type": "actions", "block_id": "running-pages", "elements": buttons}]
