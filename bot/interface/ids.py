"""Action and callback ids: the names Slack sends back when someone clicks or submits. Defined once here,
grouped by desk; messages set them, ``bot.interface.routes`` maps each to its handler, the Slack app and the
console deliver them."""

from __future__ import annotations

# The runs desk: the run message's buttons, the plan and reject forms.
APPROVE = "run.approve"
REJECT = "run.reject"
START = "run.start"
CANCEL = "run.cancel"
ABORT = "run.abort"  # the kill switch: never waits behind other work
EDIT = "run.edit"
HOME_MORE = "home.more"  # App Home: the next page of running runs; value: HomePage
HOME_FIRST = "home.first"  # App Home: back to the first page; value: HomePage
HOME_PAGES = (HOME_MORE, HOME_FIRST)  # they publish the tab themselves: it is not refreshed to page one after
PLAN_SUBMIT = "plan.submit"
REJECT_SUBMIT = "reject.submit"
RUN_ACTION_PREFIX = "run."  # an unknown button with it is from an older chaosbot: answered, not ignored

# The schedule-and-freezes desk.
POSTPONE = "run.postpone"  # on the notice before a planned start: opens the runs desk's edit form
START_ANYWAY = "run.start_anyway"
OVERRIDE_SUBMIT = "override.submit"
FREEZE_SUBMIT = "freeze.submit"

# The learning desk: the retrospective's "Add action item", an item's "Done", the action item form.
ADD_ACTION = "retro.add_action"  # value: RunRef
ITEM_DONE = "item.done"  # value: ItemRef
ACTION_ITEM_SUBMIT = "action_item.submit"

# The alarms desk: the loud revert-failure alert's button (anyone in the channel; stops the reminders).
ACKNOWLEDGE_ALARM = "run.acknowledge_alarm"  # value: RunRef

# The input blocks of each form: a core error naming one of these is shown on that field.
FORM_FIELDS: dict[str, tuple[str, ...]] = {
    PLAN_SUBMIT: ("environment", "planned_start", "rollback_steps", "notes", "auto_start"),
    REJECT_SUBMIT: ("reason",),
    OVERRIDE_SUBMIT: ("reason",),
    FREEZE_SUBMIT: ("starts_at", "ends_at", "environments", "reason"),
    ACTION_ITEM_SUBMIT: ("what", "owner", "due"),
}
