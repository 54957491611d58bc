"""The runs desk's forms: the plan form (a new run, or an edit of a planned one) and the reject form.

Validation is the core's (``PlanRules.check_plan``, ``check_reason``) and touches no database, so field
errors go back in the ack; the work happens after it (see ``Submission``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from zoneinfo import ZoneInfo

from bot.interface import fields
from bot.interface.conversation import Conversation, Submission
from bot.interface.fields import Values
from bot.interface.kit import notice
from bot.interface.metadata import PlanMeta, RunRef
from bot.interface.surface import DeliveryFailed, Request
from bot.runs.models import Run
from bot.runs.rules import PlanRequest
from bot.vocabulary import format_local
from bot.words import Person, Words, listing

log = logging.getLogger(__name__)


class RunForms:
    def __init__(self, talk: Conversation) -> None:
        self.talk = talk

    def plan(self, request: Request, values: Values, metadata: str) -> Submission:
        """The plan form: a new run, or with a run in its metadata an edit of that run's plan."""
        meta = PlanMeta.load(metadata)
        request = replace(request, channel=meta.channel)  # answer where `/chaos plan` was typed
        plan = PlanRequest(
            experiment_id=meta.experiment,
            environment=fields.value(values, "environment"),
            planned_start=fields.moment(values, "planned_start", problem="Pick a date and time for the planned start."),
            rollback_steps=fields.text(values, "rollback_steps"),  # emptied in the form: the core refuses it
            notes=fields.text(values, "notes"),
            auto_start=fields.ticked(values, "auto_start"),
        )
        self.talk.core.rules.check_plan(plan)  # the off-peak window too: field errors go back inside the ack
        run_id = meta.run
        if run_id is not None:
            return Submission(then=lambda: self.talk.guarded(request, lambda: self._edit(request, run_id, plan)))
        return Submission(then=lambda: self.talk.guarded(request, lambda: self._create(request, plan)))

    def reject(self, request: Request, values: Values, metadata: str) -> Submission:
        run_id = RunRef.load(metadata).run
        reason = self.talk.core.rules.check_reason(fields.text(values, "reason"))

        def reject() -> None:
            run = self.talk.core.transitions.reject(request.user, run_id, reason)
            self.talk.publisher.run_changed(run.id)
            self.talk.publisher.timeline(run.id, Words.of("Rejected by ", Person(request.user), f": {reason}"))

        return Submission(then=lambda: self.talk.guarded(request, reject))

    def _create(self, request: Request, plan: PlanRequest) -> None:
        talk = self.talk
        run = talk.core.transitions.plan(request.user, plan)
        channel = talk.publisher.channel
        try:
            posted = talk.publisher.post_plan(run.id)
        except DeliveryFailed as exc:
            log.warning("could not post the plan of %s: %s", run.label, exc.reason, extra={"run_id": run.id})
            talk.reply(request, notice(self._unposted(run.label, channel, exc.reason)))
            return
        talk.publisher.timeline(
            run.id, Words.of("Planned by ", Person(request.user), ". Approvers: use the buttons above.")
        )
        where = talk.say.channel(posted.channel_id or channel)
        talk.reply(request, notice(f":clipboard: {run.label} is planned; its approvals happen in {where}."))

    def _edit(self, request: Request, run_id: int, plan: PlanRequest) -> None:
        talk = self.talk
        before = talk.core.queries.run(run_id)
        reset = [(approval.role.replace("_", " "), approval.user_id) for approval in before.approvals]
        after = talk.core.transitions.edit(request.user, run_id, plan)
        talk.publisher.run_changed(after.id)
        talk.publisher.timeline(after.id, edit_words(request.user, before, after, reset, talk.publisher.zone))
        talk.tell(request, f":pencil2: {after.label} is saved; its approvals were reset.")

    def _unposted(self, label: str, channel: str, reason: str) -> str:
        return (
            f":warning: {label} is planned, but I could not post it in {self.talk.say.channel(channel)} ({reason}). "
            f"Invite me there with `/invite @chaosbot`: the plan appears there on its next change, "
            f"or run `/chaos status {label}` to see it now."
        )


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
