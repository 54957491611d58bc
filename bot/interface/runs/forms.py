"""Form submissions: map the fields to the core's request, let the core validate, answer inside the ack.

Validation is the core's (``Lifecycle.check_plan``, ``check_reason``) and touches no database, so field
errors go back in the ack; the work happens after it. A core error names a field: shown on that field
when the form has it, otherwise told to the person once the form closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bot.errors import DomainError, InvalidInput
from bot.interface import ids
from bot.interface.conversation import Conversation
from bot.interface.metadata import PlanMeta, RunRef
from bot.interface.runs import messages as blocks
from bot.interface.surface import DeliveryFailed, Request
from bot.runs.flows import PlanRequest
from bot.words import Person, Words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """The answer to a form: field errors to show inline, or work to do after the form closes."""

    errors: dict[str, str] | None = None
    then: Callable[[], None] | None = None


class Forms:
    def __init__(self, talk: Conversation) -> None:
        self.talk = talk
        # Forms registered by other modules (the action item form): callback id -> (request, values, metadata).
        self.routes: dict[str, Callable[[Request, dict[str, Any], str], Submission]] = {}
        # The plan form with a run in its metadata edits that run (registered by ``Timing``).
        self.edit_plan: Callable[[Request, int, PlanRequest], None] | None = None

    def submit(self, request: Request, callback_id: str, values: dict[str, Any], metadata: str) -> Submission:
        try:
            route = self.routes.get(callback_id)
            if route is not None:
                return route(request, values, metadata)
            if callback_id == ids.PLAN_SUBMIT:
                return self.plan(request, values, PlanMeta.load(metadata))
            if callback_id == ids.REJECT_SUBMIT:
                return self.reject(request, values, RunRef.load(metadata).run)
        except DomainError as exc:
            field = exc.field if isinstance(exc, InvalidInput) else None
            if field is not None and field in ids.FORM_FIELDS.get(callback_id, ()):
                return Submission(errors={field: self.talk.say(exc.words)})
            words = exc.words
            return Submission(then=lambda: self.talk.tell(request, words))
        log.warning("unknown view submission %s", callback_id)
        return Submission()

    def plan(self, request: Request, values: dict[str, Any], meta: PlanMeta) -> Submission:
        request = replace(request, channel=meta.channel)  # answer where `/chaos plan` was typed
        plan = PlanRequest(
            experiment_id=meta.experiment,
            environment=_field(values, "environment"),
            planned_start=_moment(_field(values, "planned_start")),
            rollback_steps=_field(values, "rollback_steps") or "",  # emptied in the form: the core refuses it
            notes=_field(values, "notes") or "",
            auto_start=_ticked(values, "auto_start"),
        )
        valid = self.talk.lifecycle.check_plan(plan)
        outside = self.talk.lifecycle.gate.window_error(valid.environment, valid.planned_start)
        if outside is not None:
            raise InvalidInput(outside, field="planned_start")
        edit, run_id = self.edit_plan, meta.run
        if edit is not None and run_id is not None:
            return Submission(then=lambda: self.talk.guarded(request, lambda: edit(request, run_id, plan)))
        return Submission(then=lambda: self.talk.guarded(request, lambda: self._create(request, plan)))

    def _create(self, request: Request, plan: PlanRequest) -> None:
        talk = self.talk
        run = talk.lifecycle.plan(request.user, plan)
        channel = talk.publisher.channel
        try:
            posted = talk.publisher.post_plan(run.id)
        except DeliveryFailed as exc:
            log.warning("could not post the plan of %s: %s", run.label, exc.reason, extra={"run_id": run.id})
            talk.reply(request, blocks.notice(self._unposted(run.label, channel, exc.reason)))
            return
        talk.publisher.timeline(
            run.id, Words.of("Planned by ", Person(request.user), ". Approvers: use the buttons above.")
        )
        where = talk.say.channel(posted.channel_id or channel)
        talk.reply(request, blocks.notice(f":clipboard: {run.label} is planned; its approvals happen in {where}."))

    def reject(self, request: Request, values: dict[str, Any], run_id: int) -> Submission:
        reason = self.talk.lifecycle.check_reason(_field(values, "reason") or "")

        def reject() -> None:
            run = self.talk.lifecycle.reject(request.user, run_id, reason)
            self.talk.publisher.run_changed(run.id)
            self.talk.publisher.timeline(run.id, Words.of("Rejected by ", Person(request.user), f": {reason}"))

        return Submission(then=lambda: self.talk.guarded(request, reject))

    def _unposted(self, label: str, channel: str, reason: str) -> str:
        return (
            f":warning: {label} is planned, but I could not post it in {self.talk.say.channel(channel)} ({reason}). "
            f"Invite me there with `/invite @chaosbot`: the plan appears there on its next change, "
            f"or run `/chaos status {label}` to see it now."
        )


def _field(values: dict[str, Any], block_id: str) -> str | None:
    """The submitted value of an input block, whatever element Slack used for it."""
    element = (values.get(block_id) or {}).get("value") or {}
    if "selected_option" in element:
        return (element["selected_option"] or {}).get("value")
    for key in ("value", "selected_date_time"):
        if element.get(key) is not None:
            return str(element[key])
    return None


def _ticked(values: dict[str, Any], block_id: str) -> bool:
    """A one-box checkboxes field: ticked or not. A form from before the box existed had it ticked."""
    if block_id not in values:
        return True
    element = (values.get(block_id) or {}).get("value") or {}
    return bool(element.get("selected_options"))


def _moment(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except ValueError:
        raise InvalidInput("Pick a date and time for the planned start.", field="planned_start") from None
