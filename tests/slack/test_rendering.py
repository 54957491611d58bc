"""People become mentions only where the interface renders them; what people type never pings anyone."""

from __future__ import annotations

import time

from bot.interface.render import SLACK
from bot.words import Group, Person, Words
from tests.fakeslack import wire

from .conftest import OWNER, SECURITY, Bot, RunHandle, block_text, plan_values

HOSTILE = "<!channel> & <@U0NOBODY> <!subteam^S0STAKE>"
SHOWN = "&lt;!channel&gt; &amp; &lt;@U0NOBODY&gt; &lt;!subteam^S0STAKE&gt;"


def test_people_and_groups_become_mentions_and_typed_text_is_escaped() -> None:
    words = Words.of("Approved by ", Person("U0RELIAB"), " for ", Group("S0STAKE"), ": ", HOSTILE)
    assert SLACK(words) == f"Approved by <@U0RELIAB> for <!subteam^S0STAKE>: {SHOWN}"
    assert SLACK("a <b> & c") == "a &lt;b&gt; &amp; c"
    assert SLACK.channel("C0123") == "<#C0123>" and SLACK.channel("#reliability") == "#reliability"


def plan_with_notes(bot: Bot, notes: str) -> RunHandle:
    view = bot.open_plan()
    values = plan_values("staging", int(time.time()) + 60, rollback=f"1. Revert. {notes}")
    values["notes"] = {"value": wire.text_value(notes)}
    return bot.submit_plan(view, values, OWNER)


def test_typed_notes_and_reasons_are_shown_not_interpreted(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = plan_with_notes(bot, HOSTILE)

    shown = block_text(bot.message(run)["blocks"])
    assert f"*Notes*\n{SHOWN}" in shown and f"1. Revert. {SHOWN}" in shown
    assert "<!channel>" not in shown and "<@U0NOBODY>" not in shown

    trigger = wire.trigger_id()
    assert bot.click("run.reject", run, SECURITY, trigger=trigger).status == 200
    view = bot.slack.wait_for("views.open", predicate=lambda c: c.params.get("trigger_id") == trigger)[-1]
    reason = {"reason": {"value": wire.text_value(f"no. {HOSTILE}")}}
    assert bot.submit(view.response["view"], reason, SECURITY).status == 200

    rejected = bot.reply(run, "Rejected by")
    assert rejected.params["text"] == f"Rejected by <@{SECURITY}>: no. {SHOWN}"  # the rejecter pinged, nobody else
    state = bot.wait_message(run, lambda m: "Rejected" in m["text"], what="rejected")
    assert f"Rejected by <@{SECURITY}>: no. {SHOWN}" in block_text(state["blocks"])
