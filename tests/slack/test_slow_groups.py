"""A slow Slack holds up nobody else: user-group members are read before any transaction opens.

On SQLite every transaction takes the one write lock. If an approval asked Slack who is in a user group
while its transaction was open, a slow ``usergroups.users.list`` would stall every other state change,
an abort's record included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.fakeslack.server import FakeSlack

from .conftest import RELIABILITY, ROLE_CACHE_SECONDS, STAKEHOLDER, Bot, wait_until

SLACK_DELAY = 5.0


@pytest.fixture
def slow_groups(slack: FakeSlack) -> Iterator[Callable[[], None]]:
    """Call it to make every ``usergroups.users.list`` answer after SLACK_DELAY (until the test ends)."""
    yield lambda: slack.set_latency(SLACK_DELAY, "usergroups.users.list")
    slack.set_latency(0.0, "usergroups.users.list")


def last_group_lookup(bot: Bot) -> float:
    """When the fake Slack last answered a user group's members (0 if never)."""
    return max((call.time for call in bot.slack.calls("usergroups.users.list")), default=0.0)


def aborted_and_recorded(bot: Bot, run_id: int) -> bool:
    recorded = bot.server.query("SELECT 1 FROM audit_events WHERE run_id = :id AND action = 'run.aborted'", id=run_id)
    return bot.server.run_state(run_id) == "aborted" and bool(recorded)


def test_an_abort_and_its_record_do_not_wait_for_a_slow_group_lookup(
    short_role_cache_bot: Bot, slow_groups: Callable[[], None]
) -> None:
    bot = short_role_cache_bot
    running = bot.approved_run()
    bot.start(running)
    waiting = bot.plan()
    slow_groups()
    # Every group snapshot is stale once no lookup has been answered for ROLE_CACHE_SECONDS (a snapshot is dated
    # when its answer arrives, and the lookups asked from now on take SLACK_DELAY): reading one takes SLACK_DELAY.
    wait_until(
        lambda: time.time() - last_group_lookup(bot) > ROLE_CACHE_SECONDS + 0.1,
        timeout=ROLE_CACHE_SECONDS + 1,
        what="every group snapshot stale",
    )

    # A stakeholder holds the role through the user group: this approval has to ask Slack.
    assert bot.click("run.approve", waiting, STAKEHOLDER).status == 200
    time.sleep(0.3)  # the approval is now waiting for Slack
    asked = time.monotonic()
    assert bot.command(f"abort {running.label} slow Slack", RELIABILITY).status == 200
    wait_until(lambda: aborted_and_recorded(bot, running.id), timeout=SLACK_DELAY, what="the abort and its record")
    took = time.monotonic() - asked

    assert took < 1.0, f"the abort waited {took:.2f}s behind the group lookup"
    bot.reply(waiting, f"Approved by <@{STAKEHOLDER}>", timeout=SLACK_DELAY * 3)  # the approval still completes
    assert bot.server.run_state(waiting.id) == "planned"
