"""Action and callback ids: the names Slack sends back when someone clicks or submits. Defined once here;
blocks set them, handlers and the Slack app route on them, the console dispatches them."""

from __future__ import annotations

APPROVE = "run.approve"
REJECT = "run.reject"
START = "run.start"
CANCEL = "run.cancel"
ABORT = "run.abort"
RUN_ACTIONS = (APPROVE, REJECT, START, CANCEL, ABORT)
RUN_ACTION_PREFIX = "run."

PLAN_SUBMIT = "plan.submit"
REJECT_SUBMIT = "reject.submit"
FORMS = (PLAN_SUBMIT, REJECT_SUBMIT)

# The input blocks of each form: a core error naming one of these is shown on that field.
PLAN_FIELDS = ("environment", "planned_start", "rollback_steps", "notes")
REJECT_FIELDS = ("reason",)
FORM_FIELDS = {PLAN_SUBMIT: PLAN_FIELDS, REJECT_SUBMIT: REJECT_FIELDS}
