"""Action and callback ids: the names Slack sends back when someone clicks or submits. Defined once here;
blocks set them, handlers and the Slack app route on them, the console dispatches them."""

from __future__ import annotations

APPROVE = "run.approve"
REJECT = "run.reject"
START = "run.start"
CANCEL = "run.cancel"
ABORT = "run.abort"
RUN_ACTIONS: tuple[str, ...] = (APPROVE, REJECT, START, CANCEL, ABORT)
RUN_ACTION_PREFIX = "run."

PLAN_SUBMIT = "plan.submit"
REJECT_SUBMIT = "reject.submit"
FORMS: tuple[str, ...] = (PLAN_SUBMIT, REJECT_SUBMIT)

# The input blocks of each form: a core error naming one of these is shown on that field.
PLAN_FIELDS: tuple[str, ...] = ("environment", "planned_start", "rollback_steps", "notes")
REJECT_FIELDS = ("reason",)
FORM_FIELDS = {PLAN_SUBMIT: PLAN_FIELDS, REJECT_SUBMIT: REJECT_FIELDS}

# After the run (issue 9): the retrospective's "Add action item", an item's "Done", the action item form.
ADD_ACTION = "retro.add_action"  # value: RunRef
ITEM_DONE = "item.done"  # value: ItemRef
LEARNING_ACTIONS = (ADD_ACTION, ITEM_DONE)
ACTION_ITEM_SUBMIT = "action_item.submit"
ACTION_ITEM_FIELDS = ("what", "owner", "due")
FORMS += (ACTION_ITEM_SUBMIT,)
FORM_FIELDS[ACTION_ITEM_SUBMIT] = ACTION_ITEM_FIELDS

# Issue 8: editing and postponing plans, starting inside a freeze, freezes.
EDIT = "run.edit"
POSTPONE = "run.postpone"  # on the notice before a planned start: opens the same edit form
START_ANYWAY = "run.start_anyway"
RUN_ACTIONS += (EDIT, POSTPONE, START_ANYWAY)
FREEZE_SUBMIT = "freeze.submit"
OVERRIDE_SUBMIT = "override.submit"
FORMS += (FREEZE_SUBMIT, OVERRIDE_SUBMIT)
PLAN_FIELDS += ("auto_start",)
FREEZE_FIELDS = ("starts_at", "ends_at", "environments", "reason")
OVERRIDE_FIELDS = ("reason",)
FORM_FIELDS.update({PLAN_SUBMIT: PLAN_FIELDS, FREEZE_SUBMIT: FREEZE_FIELDS, OVERRIDE_SUBMIT: OVERRIDE_FIELDS})

# Issue 10: the loud revert-failure alert's button (anyone in the channel; stops the reminders).
ACKNOWLEDGE_ALARM = "run.acknowledge_alarm"  # value: RunRef
RUN_ACTIONS += (ACKNOWLEDGE_ALARM,)
