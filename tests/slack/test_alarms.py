"""A revert that fails (target down) raises the loud alert with the manual rollback steps and repeats it
until someone in the channel presses "Acknowledge" (audited); the real server against the fake Slack."""

from __future__ import annotations

import json
from typing import Any

from tests.fakeslack import wire
from tests.fakeslack.server import Call

from .conftest import ALERT_REPEAT_SECONDS, BROKEN_EXPERIMENT, CHANNEL, OUTSIDER, OWNER, Bot, holds_for, wait_until

ACK = "run.acknowledge_alarm"


def alerts(bot: Bot) -> list[Call]:
    return [
        call
        for call in bot.slack.calls("chat.postMessage")
        if call.params.get("channel") == CHANNEL and "NOT" in str(call.params.get("text")) and call.ok
    ]


def blocks_of(call: Call) -> list[dict[str, Any]]:
    blocks = call.params.get("blocks")
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks or [])


def test_a_failed_revert_is_alerted_again_until_someone_acknowledges_it(fast_alarms_bot: Bot) -> None:
    bot = fast_alarms_bot
    run = bot.approved_run(BROKEN_EXPERIMENT)  # inject and revert both hit a closed port
    assert bot.click("run.start", run, OWNER).status == 200
    first = bot.announcement("could NOT be reverted", timeout=15)
    assert "Roll it back by hand now:" in first.params["text"]

    reminder = wait_until(
        lambda: next((c for c in alerts(bot) if "REMINDER" in str(c.params.get("text"))), None),
        timeout=ALERT_REPEAT_SECONDS * 3 + 15,
        what="the repeated alert",
    )
    assert reminder is not None
    text = str(reminder.params["text"])
    assert f"{run.label}'s fault is still NOT reverted" in text and "1. Run `/chaos abort`." in text
    assert text.count("<!here>") == 1 and f"every {ALERT_REPEAT_SECONDS}s" in text
    assert [e["action_id"] for b in blocks_of(first) for e in b.get("elements", [])] == [ACK]

    alert_message = {"ts": reminder.response["ts"], "text": text, "blocks": blocks_of(reminder)}
    click = wire.block_action(ACK, user_id=OUTSIDER, message=alert_message, channel_id=CHANNEL)
    assert bot.send(click).status == 200  # anyone in the channel may acknowledge
    told = bot.ephemeral(OUTSIDER, "acknowledged by", timeout=10)
    assert "no more reminders" in told

    settled = len(alerts(bot))
    holds_for(lambda: len(alerts(bot)) == settled, ALERT_REPEAT_SECONDS * 3, "no reminder after the acknowledgement")
    acknowledged = bot.server.query(
        "SELECT actor FROM audit_events WHERE run_id = :id AND action = 'alarm.acknowledged'", id=run.id
    )
    assert [row[0] for row in acknowledged] == [OUTSIDER]

    again = wire.block_action(ACK, user_id=OWNER, message=alert_message, channel_id=CHANNEL)
    assert bot.send(again).status == 200
    assert "no alarm waiting" in bot.ephemeral(OWNER, "no alarm", timeout=10)
