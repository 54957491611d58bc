"""Hostile input, fuzzed (hypothesis) against the real server: whatever arrives correctly signed, chaosbot answers
below 500, says something clear to the person, changes nothing when it refuses, and shows typed text as text.

Every example goes through HTTP to the session's ``chaosbot serve`` (SQLite, then PostgreSQL + Redis), signed
with the real secret, so it crosses the same signature check, Bolt routing and handlers as Slack's requests.
In CI each test runs its full example count per database (10,330 examples over the suite, see ``CI_EXAMPLES``);
locally one in ``LOCAL_SHARE``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakeslack import wire

from .conftest import (
    CHANNEL,
    OWNER,
    RELIABILITY,
    SECURITY,
    STAKEHOLDER,
    Bot,
    Response,
    plan_values,
    wait_until,
)
from .hostile import (
    SLACK_MESSAGE_LIMIT,
    Unchanged,
    assert_unchanged,
    calls_since,
    escaped,
    fuzz_settings,
    hostile_text,
    live_markup_from_typing,
    mrkdwn_texts,
    posted_text,
    quiet,
    state,
    wait_for_answer,
    words_with_markup,
)

CI_EXAMPLES = {  # per database: 5,010 x 2 = 10,020 examples in CI; cheap kinds get the most
    "malformed_bodies": 2410,
    "wrong_shape": 1300,
    "actions": 500,
    "commands": 700,
    "plan_fields": 60,
    "cancel_and_reject": 30,
    "abort": 10,
}
# Some tests run 2,000 examples: beyond pytest-timeout's default 120 s on a slow, shared CI machine.
pytestmark = pytest.mark.timeout(400)
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def refusing(bot: Bot) -> Iterator[Bot]:
    """The bot with one planned run to aim at; every example of the test must be refused, so at the end the
    whole state (runs, approvals, kill switch, audit chain apart from records of commands) is as it was."""
    bot.plan()
    before = state(bot.server)
    yield bot
    quiet(bot.slack)
    assert_unchanged(bot.server, before, "every request of this test")


@pytest.fixture
def unchanged(refusing: Bot) -> Unchanged:
    return Unchanged(refusing.server)


def signed(body: bytes, content_type: str | None) -> wire.SignedRequest:
    headers = wire.sign(body)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return wire.SignedRequest(body, headers)


_forged_users = iter(range(1, 10**9))


def forged_user() -> str:
    """A fresh user id nobody gave a role: every example's answer can be told apart by its addressee."""
    return f"U0FZ{next(_forged_users):07d}"


def assert_clear_answer(bot: Bot, answer: Response, user: str, started: float, response_url: str | None = None) -> None:
    """Below 500; an empty 200 must be followed by a message to the person, a non-empty one is the answer."""
    assert answer.status < 500, f"HTTP {answer.status}: {answer.body[:300]!r}"
    if answer.status == 200 and not answer.body:
        wait_for_answer(bot.slack, user, started, response_url)


def assert_text_stays_text(bot: Bot, started: float) -> None:
    leaked = live_markup_from_typing(calls_since(bot.slack, started))
    assert not leaked, f"typed markup posted live: {leaked}"


# -- malformed bodies ------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    ["payload", "command", "text", "user_id", "type", "trigger_id", "token", "ssl_check", "challenge", "event"]
) | st.text(max_size=10)
CONTENT_TYPES = st.sampled_from(
    [FORM, "application/json", "text/plain", "multipart/form-data; boundary=x", "application/xml", None]
)


# Built once, not per example: a strategy object works out its properties the first time it is drawn from.
SHAPES = st.sampled_from(["bytes", "form", "payload", "json", "command"])
ANY_BYTES = st.binary(max_size=3000)
FORMS = st.dictionaries(FIELD_NAMES, st.text(max_size=200), max_size=6)
PAYLOADS = st.one_of(st.text(max_size=300), JSON_VALUES.map(json.dumps))
COMMAND_FIELDS = sorted(wire.slash_command_fields(""))
SOME_COMMAND_FIELDS = st.lists(st.sampled_from(COMMAND_FIELDS), unique=True)


@st.composite
def malformed_bodies(draw: st.DrawFn) -> wire.SignedRequest:
    shape = draw(SHAPES)
    if shape == "bytes":
        body = draw(ANY_BYTES)
    elif shape == "form":
        body = urlencode(draw(FORMS)).encode()
    elif shape == "payload":
        body = urlencode({"payload": draw(PAYLOADS)}).encode()
    elif shape == "json":
        body = json.dumps(draw(JSON_VALUES)).encode()
    else:  # a slash command missing some of its fields
        full = wire.slash_command_fields(draw(hostile_text()), forged_user())
        fields = {key: full[key] for key in draw(SOME_COMMAND_FIELDS)}
        body = urlencode(fields).encode()
    return signed(body, draw(CONTENT_TYPES))


@fuzz_settings(CI_EXAMPLES["malformed_bodies"])
@given(request=malformed_bodies())
def test_malformed_bodies_are_answered_below_500_and_change_nothing(
    refusing: Bot, unchanged: Unchanged, request: wire.SignedRequest
) -> None:
    bot = refusing
    started = time.time()
    answer = bot.send(request)
    assert answer.status < 500, f"HTTP {answer.status} for {request.body[:200]!r}: {answer.body[:300]!r}"
    unchanged.check("a malformed body")
    assert_text_stays_text(bot, started)


# -- payloads of the wrong shape ------------------------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(document: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    copy = json.loads(json.dumps(document))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


WRONG_SHAPE_USER = "U0FZWRONG"  # holds no role, so each template, well formed, is refused too


@functools.cache
def _templates() -> dict[str, dict[str, Any]]:
    """Requests the bot refuses even when well formed (so no mutation can turn one into an accepted change)."""
    user = WRONG_SHAPE_USER
    click = wire.block_action("run.approve", json.dumps({"run": 1}), user, channel_id=CHANNEL).payload()
    values = plan_values("staging", int(time.time()) + 600)
    unknown_experiment = json.dumps({"experiment": "CE-00"})
    submission = wire.view_submission("plan.submit", values, user, unknown_experiment).payload()
    reject = wire.view_submission("reject.submit", {"reason": {"value": wire.text_value("no")}}, user, '{"run":1}')
    event = json.loads(wire.event_callback(wire.app_home_opened(user)).body)
    return {"block_actions": click, "view_submission": submission, "reject": reject.payload(), "event": event}


@functools.cache
def _template_choices() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return st.sampled_from(sorted(_templates().items()))


@st.composite
def wrong_shapes(draw: st.DrawFn) -> wire.SignedRequest:
    kind, template = draw(_template_choices())
    # A fresh delivery each time, or the ledger would drop every example after the first as a repeat.
    fresh = {"event_id": f"Ev{next(_forged_users):08d}"} if kind == "event" else {"trigger_id": wire.trigger_id()}
    document = {**template, **fresh}
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        document = _mutate(document, path, draw(JSON_VALUES), delete=draw(st.booleans()))
    if kind == "event":
        return signed(json.dumps(document).encode(), "application/json")
    return signed(urlencode({"payload": json.dumps(document)}).encode(), FORM)


@fuzz_settings(CI_EXAMPLES["wrong_shape"])
@given(request=wrong_shapes())
def test_payloads_of_the_wrong_shape_are_refused_clearly(
    refusing: Bot, unchanged: Unchanged, request: wire.SignedRequest
) -> None:
    bot = refusing
    started = time.time()
    answer = bot.send(request)
    assert answer.status < 500, f"HTTP {answer.status} for {request.body[:300]!r}: {answer.body[:300]!r}"
    unchanged.check("a payload of the wrong shape")
    assert_text_stays_text(bot, started)


# -- button clicks: unknown actions, forged users, odd values -------------------------------------------

ACTION_IDS = st.one_of(
    st.sampled_from(["run.approve", "run.reject", "run.start", "run.cancel", "run.abort", "run.edit", "run."]),
    st.text(max_size=30).map(lambda tail: f"run.{tail}"),
    st.text(max_size=30),
)


@fuzz_settings(CI_EXAMPLES["actions"])
@given(action_id=ACTION_IDS, value=st.one_of(st.none(), JSON_VALUES.map(json.dumps), hostile_text()), data=st.data())
def test_clicks_from_people_without_a_role_change_nothing(
    refusing: Bot, unchanged: Unchanged, action_id: str, value: str | None, data: st.DataObject
) -> None:
    bot = refusing
    run = bot.runs[0]
    if data.draw(st.booleans(), label="value names the planned run"):
        value = json.dumps({"run": run.id})
    user, url = forged_user(), bot.slack.response_url()
    started = time.time()
    answer = bot.send(
        wire.block_action(action_id, value, user, message=bot.message(run), channel_id=CHANNEL, response_url=url)
    )
    assert_clear_answer(bot, answer, user, started, url)
    unchanged.check(f"{action_id} clicked by {user}")
    assert_text_stays_text(bot, started)


# -- commands from someone with no role ----------------------------------------------------------------

VERBS = st.sampled_from(
    ["", "help", "list", "status", "plan", "start", "approve", "cancel", "resume", "abort", "freeze", "report", "edit"]
)
WORDS_AS_VERBS = hostile_text(1)


COMMAND_VERBS = VERBS | WORDS_AS_VERBS


@functools.cache
def command_arguments(target: str) -> st.SearchStrategy[list[str]]:
    return st.lists(st.one_of(st.just(target), st.just("RUN-999999"), hostile_text(3)), max_size=4)


@st.composite
def command_texts(draw: st.DrawFn, target: str) -> str:
    verb = draw(COMMAND_VERBS)
    args = draw(command_arguments(target))
    text = " ".join([verb, *args])[:SLACK_MESSAGE_LIMIT]
    words = text.lower().split()
    if words[:2] in (["abort", "all"], ["abort"]) or words[:1] == ["plan"]:
        # The kill switch is open to anyone in the channel (it changes state by design); a plan opens a modal.
        text = f"status {text}"
    return text


@fuzz_settings(CI_EXAMPLES["commands"])
@given(data=st.data())
def test_commands_from_someone_with_no_role_are_refused_as_text(
    refusing: Bot, unchanged: Unchanged, data: st.DataObject
) -> None:
    bot = refusing
    text = data.draw(command_texts(bot.runs[0].label), label="text")
    user, url = forged_user(), bot.slack.response_url()
    started = time.time()
    answer = bot.send(wire.slash_command(text, user, response_url=url))
    assert_clear_answer(bot, answer, user, started, url)
    unchanged.check(f"/chaos {text!r} from {user}")
    assert_text_stays_text(bot, started)


# -- typed reasons, notes and rollback steps: shown as text --------------------------------------------


def _shown_as_text(bot: Bot, started: float, typed: str) -> None:
    """``typed`` reached a message escaped, and nothing posted since ``started`` carries live typed markup.

    The message carrying it goes out after the state change is committed, so under load it can come a moment
    after the run's new state is visible: wait for it rather than for a quiet spell."""
    expected = escaped(" ".join(typed.split())).rstrip(".")
    try:
        wait_until(lambda: expected in posted_text(calls_since(bot.slack, started)), timeout=10, what="the text shown")
    except AssertionError:
        shown = posted_text(calls_since(bot.slack, started))
        raise AssertionError(f"{expected!r} is not shown (escaped) in any message: {shown}") from None
    bot.settle(quiet=0.15)
    leaked = live_markup_from_typing(calls_since(bot.slack, started))
    assert not leaked, f"typed markup posted live: {leaked}"


def _plan_with(bot: Bot, view: dict[str, Any], notes: str, rollback: str) -> None:
    values = plan_values("staging", int(time.time()) + 600, rollback=rollback)
    values["notes"] = {"value": wire.text_value(notes)}
    run = bot.submit_plan(view, values, OWNER)
    bot.ephemeral(OWNER, f"{run.label} is planned")


@fuzz_settings(CI_EXAMPLES["plan_fields"])
@given(notes=words_with_markup(), rollback=words_with_markup())
def test_plan_notes_and_rollback_steps_are_shown_as_text(bot: Bot, notes: str, rollback: str) -> None:
    view = bot.open_plan(OWNER)
    started = time.time()
    _plan_with(bot, view, notes, rollback)
    _shown_as_text(bot, started, notes)
    _shown_as_text(bot, started, rollback)


@fuzz_settings(CI_EXAMPLES["cancel_and_reject"])
@given(reason=words_with_markup(), how=st.sampled_from(["cancel command", "reject form"]))
def test_cancel_and_reject_reasons_are_shown_as_text(bot: Bot, reason: str, how: str) -> None:
    run = bot.plan()
    started = time.time()
    if how == "cancel command":
        assert bot.command(f"cancel {run.label} {reason}", OWNER).status == 200
        wait_until(lambda: bot.server.run_state(run.id) == "cancelled", what=f"{run.label} cancelled")
    else:
        trigger = wire.trigger_id()
        assert bot.click("run.reject", run, RELIABILITY, trigger=trigger).status == 200
        modal = bot.slack.wait_for("views.open", predicate=lambda c: c.params.get("trigger_id") == trigger)[-1]
        view = modal.response["view"]
        values = {"reason": {"value": wire.text_value(reason)}}
        assert bot.submit(view, values, RELIABILITY).status == 200
        wait_until(lambda: bot.server.run_state(run.id) == "rejected", what=f"{run.label} rejected")
    _shown_as_text(bot, started, reason)


@fuzz_settings(CI_EXAMPLES["abort"])
@given(reason=words_with_markup(5))
def test_abort_reasons_are_shown_as_text(bot: Bot, reason: str) -> None:
    run = bot.approved_run()
    bot.start(run)
    started = time.time()
    assert bot.command(f"abort {run.label} {reason}", SECURITY).status == 200
    wait_until(lambda: bot.server.run_state(run.id) == "aborted", timeout=10, what=f"{run.label} aborted")
    _shown_as_text(bot, started, reason)


def test_the_reported_escape_is_closed(sqlite_bot: Bot) -> None:
    """The exact text found when tried from outside, end to end: no @channel, no mention, no disguised link."""
    bot = sqlite_bot
    run = bot.approved_run()
    bot.start(run)
    typed = f"<!channel> heads up <@{STAKEHOLDER}> see <https://evil.example/login|the runbook>"
    started = time.time()
    assert bot.command(f"abort {run.label} {typed}", RELIABILITY).status == 200
    wait_until(lambda: bot.server.run_state(run.id) == "aborted", timeout=10, what=f"{run.label} aborted")

    def texts() -> list[str]:
        return [text for call in calls_since(bot.slack, started) for text in mrkdwn_texts(call)]

    wait_until(lambda: any("&lt;!channel&gt; heads up" in text for text in texts()), what="the reason shown escaped")
    bot.settle(quiet=0.2)
    assert not any("<!channel>" in text or "<https://evil.example" in text for text in texts()), texts()
    assert not any(f"<@{STAKEHOLDER}> see" in text for text in texts()), texts()

    asked = time.time()
    assert bot.command("report", STAKEHOLDER).status == 200
    summaries = bot.slack.wait_for(
        "chat.postMessage", predicate=lambda c: c.time >= asked and "Chaos experiments" in str(c.params.get("text"))
    )
    summary = "\n".join(mrkdwn_texts(summaries[-1]))
    assert "&lt;!channel&gt; heads up" in summary, summary
    assert not live_markup_from_typing(summaries), summary
