"""Request signatures, beyond test_security.py (which covers a wrong secret, a tampered ``help`` command, missing
headers and a ten-minute-old timestamp on SQLite): requests that would change something if accepted, the edge
of the five-minute window, timestamp tricks, and a replay of the very same bytes once they are five minutes old.
Each is refused with 401 on both databases, and neither the database nor the fake Slack sees anything.
"""

from __future__ import annotations

import time

from tests.fakeslack import wire

from .conftest import OWNER, RELIABILITY, Bot, plan_values
from .hostile import assert_unchanged, quiet, said, state

WINDOW = 300  # Slack's documented limit: refuse requests whose timestamp is more than five minutes off


def resigned(request: wire.SignedRequest, **headers: str) -> wire.SignedRequest:
    return wire.SignedRequest(request.body, {**request.headers, **headers})


def assert_refused_and_nothing_happened(bot: Bot, request: wire.SignedRequest, what: str) -> None:
    before, earlier = state(bot.server), len(said(bot.slack))
    answer = bot.send(request)
    assert answer.status == 401, f"{what}: HTTP {answer.status}"
    quiet(bot.slack, 0.3)
    assert_unchanged(bot.server, before, what)
    assert len(said(bot.slack)) == earlier, f"{what}: the bot said {said(bot.slack)[earlier:]}"


def test_forged_requests_that_would_change_state_are_refused(bot: Bot) -> None:
    run = bot.plan()
    view = bot.open_plan(OWNER)
    click = wire.block_action("run.approve", user_id=RELIABILITY, message=bot.message(run))
    submission = wire.view_submission(
        view["callback_id"], plan_values("staging", int(time.time()) + 600), OWNER, view["private_metadata"], view=view
    )
    kill_switch = wire.slash_command("abort all forged", RELIABILITY)
    cases = {
        "approve click, wrong secret": wire.block_action(
            "run.approve", user_id=RELIABILITY, message=bot.message(run), secret="guessed"
        ),
        "plan submission, wrong secret": wire.view_submission(
            view["callback_id"], plan_values("staging", None), OWNER, view["private_metadata"], view=view, secret="x"
        ),
        "kill switch, no signature header": wire.SignedRequest(
            kill_switch.body, {k: v for k, v in kill_switch.headers.items() if k != "X-Slack-Signature"}
        ),
        "kill switch, no timestamp header": wire.SignedRequest(
            kill_switch.body, {k: v for k, v in kill_switch.headers.items() if k != "X-Slack-Request-Timestamp"}
        ),
        "kill switch, empty signature": resigned(kill_switch, **{"X-Slack-Signature": ""}),
        "kill switch, v1 scheme": resigned(
            kill_switch, **{"X-Slack-Signature": kill_switch.headers["X-Slack-Signature"].replace("v0=", "v1=")}
        ),
        "kill switch, timestamp changed after signing": resigned(
            kill_switch, **{"X-Slack-Request-Timestamp": str(int(kill_switch.headers["X-Slack-Request-Timestamp"]) + 1)}
        ),
        "approve click, user swapped after signing": _swap_user(
            wire.block_action("run.approve", user_id="U0NOBODY", message=bot.message(run)), "U0NOBODY", RELIABILITY
        ),
        "plan submission, body extended after signing": wire.SignedRequest(
            submission.body + b"&x=1", submission.headers
        ),
        "home event, signed for another body": wire.SignedRequest(
            wire.event_callback(wire.app_home_opened(OWNER)).body,
            wire.event_callback(wire.app_home_opened(RELIABILITY)).headers,
        ),
    }
    for what, request in cases.items():
        assert_refused_and_nothing_happened(bot, request, what)
    # The genuine requests still work: the refusals were about the signatures only.
    assert bot.send(click).status == 200
    bot.reply(run, f"Approved by <@{RELIABILITY}>")


def test_a_timestamp_that_is_not_a_number_is_refused_not_a_crash(bot: Bot) -> None:
    kill_switch = wire.slash_command("abort all forged", RELIABILITY)
    for timestamp in ("soon", "", "1e9", "-1", "12.5"):
        request = resigned(kill_switch, **{"X-Slack-Request-Timestamp": timestamp})
        assert_refused_and_nothing_happened(bot, request, f"the kill switch with timestamp {timestamp!r}")


def _swap_user(request: wire.SignedRequest, old: str, new: str) -> wire.SignedRequest:
    body = request.body.replace(old.encode(), new.encode())
    assert body != request.body
    return wire.SignedRequest(body, request.headers)


def test_the_five_minute_window_both_ways(bot: Bot) -> None:
    run = bot.plan()
    now = int(time.time())
    for offset in (-(WINDOW + 10), WINDOW + 10):  # too old, and too far in the future
        click = wire.block_action("run.approve", user_id=RELIABILITY, message=bot.message(run), timestamp=now + offset)
        assert_refused_and_nothing_happened(bot, click, f"an approve click signed {offset:+d} s from now")
    inside = wire.block_action(
        "run.approve", user_id=RELIABILITY, message=bot.message(run), timestamp=now - WINDOW + 20
    )
    assert bot.send(inside).status == 200, "a request 4 min 40 s old is within Slack's window"
    bot.reply(run, f"Approved by <@{RELIABILITY}>")


def test_a_signed_request_replayed_after_five_minutes_is_refused(bot: Bot) -> None:
    """The same bytes, accepted once, are refused once their timestamp is five minutes old.

    The request is signed 296 s in the past (so the test waits seconds, not minutes), delivered at once
    (accepted and applied), then delivered again, byte for byte, after its timestamp has aged past 300 s.
    """
    run = bot.plan()
    signed_at = int(time.time()) - (WINDOW - 4)
    click = wire.block_action("run.approve", user_id=RELIABILITY, message=bot.message(run), timestamp=signed_at)
    assert bot.send(click).status == 200
    bot.reply(run, f"Approved by <@{RELIABILITY}>")
    while time.time() < signed_at + WINDOW + 2:
        time.sleep(0.25)
    assert_refused_and_nothing_happened(bot, click, "the same click replayed after five minutes")
    approvals = bot.server.query("SELECT user_id FROM approvals WHERE run_id = :id", id=run.id)
    assert approvals == [(RELIABILITY,)]


def test_a_replay_within_the_window_is_applied_once(bot: Bot) -> None:
    """Inside the window a replay passes the signature check; the delivery ledger applies it once."""
    run = bot.plan()
    click = wire.block_action("run.approve", user_id=RELIABILITY, message=bot.message(run))
    for _ in range(3):
        assert bot.send(click).status == 200
    bot.reply(run, f"Approved by <@{RELIABILITY}>")
    bot.settle(quiet=0.5)
    assert bot.server.query("SELECT count(*) FROM approvals WHERE run_id = :id", id=run.id)[0][0] == 1
    replies = [text for text in bot.replies(run) if text.startswith("Approved by")]
    assert len(replies) == 1, replies
