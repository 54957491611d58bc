"""The schedule desk's messages: a refused start (with "Start anyway" inside a freeze), the notice before a
planned start (with Postpone), the "Start anyway" form and the freeze form."""

from __future__ import annotations

from datetime import datetime

from bot.freezes.service import MAX_REASON
from bot.interface import ids
from bot.interface.kit import LABEL_LIMIT, Block, Message, button, notice, plain, section
from bot.interface.metadata import OverrideMeta, RunRef, StartRef
from bot.interface.render import Renderer
from bot.runs.models import Run
from bot.schedule.gate import Refusal
from bot.words import Words


def refusal_message(refusal: Refusal, start: StartRef, say: Renderer) -> Message:
    """A refused start: which rule and what would let it start; a freeze adds the "Start anyway" button,
    which carries the refused start's options (a rehearsal stays a rehearsal)."""
    text = f":no_entry: {say(refusal.words)}"
    if not refusal.overridable:
        return notice(text)
    anyway = button("Start anyway", ids.START_ANYWAY, start.dump(), "danger")
    block_id = f"run-{start.run}-refused"
    return Message(text=text, blocks=[section(text), {"type": "actions", "block_id": block_id, "elements": [anyway]}])


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
                "label": plain("Why must it start inside the freeze?", LABEL_LIMIT),
                "hint": plain("Recorded in the audit log and in the run's thread.", LABEL_LIMIT),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": MAX_REASON,
                },
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
                "label": plain("Environments (none chosen: all)", LABEL_LIMIT),
                "element": {
                    "type": "multi_static_select",
                    "action_id": "value",
                    "options": [{"text": plain(name), "value": name} for name in environments[:100]],
                },
            },
            {
                "type": "input",
                "block_id": "reason",
                "label": plain("Reason", LABEL_LIMIT),
                "hint": plain("What the freeze protects, e.g. the client delivery.", LABEL_LIMIT),
                "element": {"type": "plain_text_input", "action_id": "value", "max_length": MAX_REASON},
            },
        ],
    }


def _picker(block_id: str, label: str, initial: int) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, LABEL_LIMIT),
        "element": {"type": "datetimepicker", "action_id": "value", "initial_date_time": initial},
    }
