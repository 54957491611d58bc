"""Issue 8 in the interface: editing and postponing plans, starting inside a freeze, and ``/chaos freeze``.

The rules are the core's (``Lifecycle.edit``, ``StartGate``, ``Freezes``); this module opens the forms,
maps their fields to the core's requests and says what happened in the run's thread.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.catalogue.models import Experiment
from bot.errors import IllegalTransition, InvalidInput, NotPermitted
from bot.freezes.commands import AddFreeze, ListFreezes, OpenFreezeForm, RemoveFreeze, parse_freeze_command
from bot.freezes.models import Freeze
from bot.freezes.service import FreezeRequest, Freezes, check_override_reason, describe, listing_words
from bot.interface import ids
from bot.interface.conversation import Conversation
from bot.interface.metadata import OverrideMeta, PlanMeta, RunRef
from bot.interface.render import Renderer
from bot.interface.runs import messages as blocks
from bot.interface.runs.forms import Submission
from bot.interface.runs.messages import Block, Message, button, plain, section
from bot.interface.surface import Request
from bot.runs.flows import FreezeOverride, Lifecycle, PlanRequest
from bot.runs.models import Run, RunState
from bot.schedule.gate import Refusal, StartRefused
from bot.vocabulary import format_local
from bot.words import Person, Words, listing

log = logging.getLogger(__name__)
EDITABLE = (RunState.PLANNED, RunState.APPROVED)


# -- Block Kit --------------------------------------------------------------------------------------


def refusal_message(refusal: Refusal, run_id: int, say: Renderer) -> Message:
    """A refused start: which rule and what would let it start; a freeze adds the "Start anyway" button."""
    text = f":no_entry: {say(refusal.words)}"
    if not refusal.overridable:
        return blocks.notice(text)
    anyway = button("Start anyway", ids.START_ANYWAY, RunRef(run=run_id).dump(), "danger")
    return Message(
        text=text,
        blocks=[section(text), {"type": "actions", "block_id": f"run-{run_id}-refused", "elements": [anyway]}],
    )


def notice_message(run: Run, words: Words, say: Renderer) -> Message:
    """The notice before a planned start, with Postpone (owner or approver: opens the edit form)."""
    text = f":alarm_clock: {say(words)}"
    postpone = button("Postpone", ids.POSTPONE, RunRef(run=run.id).dump())
    return Message(
        text=text,
        blocks=[section(text), {"type": "actions", "block_id": f"run-{run.id}-notice", "elements": [postpone]}],
    )


def override_modal(run: Run, refusal: Refusal, meta: OverrideMeta, say: Renderer) -> Block:
    return {
        "type": "modal",
        "callback_id": ids.OVERRIDE_SUBMIT,
        "private_metadata": meta.dump(),
        "title": plain(f"Start {run.label} anyway", 24),
        "submit": plain("Start anyway", 24),
        "close": plain("Back", 24),
        "blocks": [
            section(f":warning: {say(refusal.words)}"),
            {
                "type": "input",
                "block_id": "reason",
                "label": plain("Why must it start inside the freeze?", 2000),
                "hint": plain("Recorded in the audit log and in the run's thread.", 2000),
                "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 500},
            },
        ],
    }


def freeze_modal(environments: list[str], now: datetime) -> Block:
    later = int(now.timestamp()) + 3600
    return {
        "type": "modal",
        "callback_id": ids.FREEZE_SUBMIT,
        "title": plain("Add a freeze", 24),
        "submit": plain("Add freeze", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section("No run may start inside a freeze unless an approver starts it anyway, giving a reason."),
            _picker("starts_at", "Starts", later),
            _picker("ends_at", "Ends", later + 4 * 3600),
            {
                "type": "input",
                "block_id": "environments",
                "optional": True,
                "label": plain("Environments (none chosen: all)", 2000),
                "element": {
                    "type": "multi_static_select",
                    "action_id": "value",
                    "options": [{"text": plain(name), "value": name} for name in environments[:100]],
                },
            },
            {
                "type": "input",
                "block_id": "reason",
                "label": plain("Reason", 2000),
                "hint": plain("What the freeze protects, e.g. the client delivery.", 2000),
                "element": {"type": "plain_text_input", "action_id": "value", "max_length": 500},
            },
        ],
    }


def _picker(block_id: str, label: str, initial: int) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": {"type": "datetimepicker", "action_id": "value", "initial_date_time": initial},
    }


# -- what changed in an edit ----------------------------------------------------------------------


def edit_words(actor: str, before: Run, after: Run, reset: list[tuple[str, str]], zone: ZoneInfo) -> Words:
    """ "Plan edited by @x: planned start A → B; … Every approval was reset (…): approve it again." """
    changes: list[Words] = []
    if before.environment != after.environment:
        changes.append(Words.of(f"environment {before.environment} → {after.environment}"))
    if before.planned_start != after.planned_start:
        changes.append(
            Words.of(
                f"planned start {format_local(before.planned_start, zone)} → {format_local(after.planned_start, zone)}"
            )
        )
    if before.rollback_steps != after.rollback_steps:
        changes.append(Words.of("rollback steps rewritten"))
    if before.notes != after.notes:
        changes.append(Words.of("notes rewritten" if after.notes else "notes removed"))
    if before.auto_start != after.auto_start:
        changes.append(Words.of("starts by itself" if after.auto_start else "no longer starts by itself"))
    what = listing(changes, "; ") if changes else Words.of("nothing changed")
    said = Words.of(":pencil2: Plan edited by ", Person(actor), ": ", what, ". ")
    if reset:
        given = listing([Words.of(f"{role} by ", Person(user)) for role, user in reset])
        return said + Words.of("Every approval was reset (", given, "): the plan needs approving again as written.")
    return said + Words.of("Approvals were reset: none had been given yet.")


# -- the handlers -----------------------------------------------------------------------------------


class Timing:
    """Edit and Postpone, Start anyway, and ``/chaos freeze``: registered in ``Handlers``."""

    def __init__(self, talk: Conversation) -> None:
        self.talk = talk

    @property
    def freezes(self) -> Freezes:
        return self.talk.lifecycle.gate.freezes

    # Edit / Postpone

    def open_edit(self, request: Request, run_id: int) -> None:
        lifecycle = self.talk.lifecycle
        run = lifecycle.run(run_id)
        if run.run_state not in EDITABLE:
            raise IllegalTransition(_not_editable(lifecycle, run))
        if request.user != run.owner and not lifecycle.roles.is_approver(request.user):
            raise NotPermitted(
                Words.of("Only the owner (", Person(run.owner), f") or an approver can edit {run.label}.")
            )
        if request.trigger_id is None:
            raise InvalidInput("Editing needs a form; use the Edit button in Slack or the console.")
        experiment = Experiment.model_validate(run.experiment)
        meta = PlanMeta(experiment=experiment.id, channel=request.channel, run=run.id)
        view = blocks.plan_modal(
            experiment,
            run.environment,
            run.planned_start,
            run.rollback_steps,
            meta,
            notes=run.notes,
            auto_start=run.auto_start,
        )
        self.talk.surface.open_modal(request.trigger_id, view)

    def save_edit(self, request: Request, run_id: int, plan: PlanRequest) -> None:
        talk = self.talk
        before = talk.lifecycle.run(run_id)
        reset = [(approval.role.replace("_", " "), approval.user_id) for approval in before.approvals]
        after = talk.lifecycle.edit(request.user, run_id, plan)
        talk.publisher.run_changed(after.id)
        talk.publisher.timeline(after.id, edit_words(request.user, before, after, reset, talk.publisher.zone))
        talk.tell(request, f":pencil2: {after.label} is saved; its approvals were reset.")

    # Start anyway

    def open_override(self, request: Request, run_id: int) -> None:
        lifecycle = self.talk.lifecycle
        run = lifecycle.run(run_id)
        refusal = lifecycle.gate.refusal(run, lifecycle.clock())
        if refusal is None:
            self.talk.tell(request, f"No window or freeze holds {run.label} back now: use Start.")
            return
        if not refusal.overridable or refusal.freeze is None:
            self.talk.reply(request, refusal_message(refusal, run.id, self.talk.say))
            return
        if not lifecycle.roles.is_approver(request.user):
            raise NotPermitted(f"Only an approver can start {run.label} inside {refusal.freeze.label}.")
        if request.trigger_id is None:
            raise InvalidInput("Starting anyway needs a form for the reason.")
        meta = OverrideMeta(run=run.id, freeze=refusal.freeze.id, channel=request.channel)
        self.talk.surface.open_modal(request.trigger_id, override_modal(run, refusal, meta, self.talk.say))

    def submit_override(self, request: Request, values: dict[str, Any], metadata: str) -> Submission:
        meta = OverrideMeta.load(metadata)
        reason = check_override_reason(_text(values, "reason"))
        request = replace(request, channel=meta.channel)
        override = FreezeOverride(freeze_id=meta.freeze, reason=reason)

        def start() -> None:
            talk = self.talk
            freeze = self.freezes.get(meta.freeze)
            try:
                talk.engine.start(request.user, meta.run, override=override)
            except StartRefused as exc:
                talk.reply(request, refusal_message(exc.refusal, meta.run, talk.say))
                return
            talk.publisher.timeline(
                meta.run,
                Words.of(
                    ":warning: Started inside a freeze by ",
                    Person(request.user),
                    " (",
                    describe(freeze, talk.publisher.zone),
                    f"). Reason: {reason}",
                ),
            )

        return Submission(then=lambda: self.talk.guarded(request, start))

    # /chaos freeze

    def command(self, request: Request, args: list[str]) -> None:
        talk, freezes = self.talk, self.freezes
        parsed = parse_freeze_command(" ".join(args), talk.lifecycle.zone)
        if isinstance(parsed, ListFreezes):
            talk.tell(request, listing_words(freezes.upcoming(), talk.lifecycle.zone))
            return
        approver = talk.lifecycle.roles.is_approver(request.user)
        if isinstance(parsed, OpenFreezeForm):
            if not approver:
                raise NotPermitted("Only approvers can add a freeze.")
            if request.trigger_id is None:
                raise InvalidInput("The freeze form needs Slack or the console; or use `/chaos freeze add`.")
            view = freeze_modal(list(talk.lifecycle.policy.environments), talk.lifecycle.clock())
            talk.surface.open_modal(request.trigger_id, view)
        elif isinstance(parsed, AddFreeze):
            self._added(request, freezes.add(request.user, parsed.request, approver=approver))
        elif isinstance(parsed, RemoveFreeze):
            removed = freezes.remove(request.user, parsed.freeze_id, approver=approver)
            talk.announce(
                Words.of(
                    ":unlock: ", Person(request.user), " removed the freeze ", describe(removed, talk.lifecycle.zone)
                )
            )

    def submit_freeze(self, request: Request, values: dict[str, Any], _metadata: str) -> Submission:
        wanted = FreezeRequest(
            starts_at=_picked(values, "starts_at"),
            ends_at=_picked(values, "ends_at"),
            reason=_text(values, "reason"),
            environments=tuple(_chosen(values, "environments")),
        )
        valid = self.freezes.check(wanted)

        def add() -> None:
            approver = self.talk.lifecycle.roles.is_approver(request.user)
            self._added(request, self.freezes.add(request.user, valid, approver=approver))

        return Submission(then=lambda: self.talk.guarded(request, add))

    def _added(self, request: Request, freeze: Freeze) -> None:
        zone = self.talk.lifecycle.zone
        self.talk.announce(Words.of(":lock: ", Person(request.user), " added a freeze: ", describe(freeze, zone)))


def _not_editable(lifecycle: Lifecycle, run: Run) -> Words:
    if run.run_state is RunState.RUNNING:
        return Words.of(
            f"{run.label} is running: a running run cannot be edited (abort it with `/chaos abort {run.label}`)."
        )
    return lifecycle.ended_sentence(run) + " An ended run cannot be edited; plan a new one."


def _element(values: dict[str, Any], block_id: str) -> dict[str, Any]:
    return dict((values.get(block_id) or {}).get("value") or {})


def _text(values: dict[str, Any], block_id: str) -> str:
    return str(_element(values, block_id).get("value") or "")


def _chosen(values: dict[str, Any], block_id: str) -> list[str]:
    return [str(option.get("value")) for option in _element(values, block_id).get("selected_options") or []]


def _picked(values: dict[str, Any], block_id: str) -> datetime:
    raw = _element(values, block_id).get("selected_date_time")
    if raw is None:
        raise InvalidInput("Pick a date and time.", field=block_id)
    return datetime.fromtimestamp(int(raw), tz=UTC)
