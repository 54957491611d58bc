"""What the hostile-input tests share: typed text with Slack markup in it, what the bot posted, and the state
a refused request must leave alone.

Typed markup uses identifiers no real actor has (``U0EVIL…``, ``C0EVIL…``, ``S0EVIL…``, ``evil.example``),
so any of them appearing as live markup in what the bot posted came from typed text, never from the bot.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import text as sql

from tests.fakeslack.server import Call, FakeSlack

from .conftest import CHANNEL, ChaosbotServer

# CI (``.ci/run`` sets CHAOSBOT_REQUIRE_SERVICES=1; any CI sets CI=true) runs every example count in full;
# a local run takes one in LOCAL_SHARE of them, so the whole hostile suite stays quick at a desk.
# CHAOSBOT_FUZZ_PROFILE=ci|local overrides the guess (e.g. to time the CI profile at a desk).
IN_CI = os.environ.get("CHAOSBOT_FUZZ_PROFILE") == "ci" or (
    os.environ.get("CHAOSBOT_FUZZ_PROFILE") != "local"
    and (os.environ.get("CI", "").lower() == "true" or os.environ.get("CHAOSBOT_REQUIRE_SERVICES") == "1")
)
LOCAL_SHARE = 40


def fuzz_settings(ci_examples: int) -> settings:
    """Hypothesis settings for one black-box fuzz test: ``ci_examples`` per database in CI, a few locally.

    No deadline (each example is an HTTP round trip to a shared server), no example database (nothing
    written into the repository), and the function-scoped ``bot`` fixture is meant to be shared by examples.
    """
    return settings(
        max_examples=ci_examples if IN_CI else max(5, ci_examples // LOCAL_SHARE),
        deadline=None,
        database=None,
        derandomize=not IN_CI,  # a local run is repeatable; CI explores new inputs every time
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- typed text --------------------------------------------------------------------------------------------

EVIL_USER, EVIL_CHANNEL, EVIL_GROUP = "U0EVIL01", "C0EVIL01", "S0EVIL01"
MARKUP = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!channel|channel>",
    "<!here|@here>",
    f"<@{EVIL_USER}>",
    f"<@{EVIL_USER}|boss>",
    f"<#{EVIL_CHANNEL}>",
    f"<#{EVIL_CHANNEL}|general>",
    f"<!subteam^{EVIL_GROUP}>",
    f"<!subteam^{EVIL_GROUP}|@oncall>",
    "<https://evil.example/login|the runbook>",
    "<http://evil.example>",
    "<mailto:root@evil.example|mail the admins>",
    "<!date^1392734382^{date_pretty}|Feb 18, 2014>",
    "&lt;!channel&gt;",
    "&amp;",
    "&gt;",
    "<",
    ">",
    "&",
    "*bold*",
    "`code`",
    "heads up",
    "see",
)
# Printable words (no control characters): these reasons must come back verbatim, only escaped.
WORD = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="\x7f\x85\xa0"),
    min_size=1,
    max_size=12,
)
CONTROL = st.sampled_from(["\x00", "\x07", "\x08", "\x1b[31m", "\u202e", "\u200b", "\ufeff", "\r", "\x0b", "\t"])


@functools.cache  # one strategy per size: hypothesis works out a strategy's properties once per object
def words_with_markup(max_words: int = 8) -> st.SearchStrategy[str]:
    """Space-separated words, about half of them Slack markup; never empty, never starting with a run id."""
    part = st.one_of(st.sampled_from(MARKUP), WORD)
    return st.lists(part, min_size=1, max_size=max_words).map(lambda parts: " ".join(["note:", *parts]))


SLACK_MESSAGE_LIMIT = 40_000  # the most a person can send in one message: longer text never reaches the bot


def _repeated(markup: str, times: int) -> str:
    return (markup + " ") * min(times, SLACK_MESSAGE_LIMIT // (len(markup) + 1))


@functools.cache
def hostile_text(max_words: int = 8) -> st.SearchStrategy[str]:
    """Anything a person can type: markup, control characters, odd unicode, and now and then a lot of it (one
    piece of markup repeated up to Slack's message limit, far past every limit the bot clips to)."""
    part = st.one_of(st.sampled_from(MARKUP), WORD, CONTROL, st.text(max_size=8))
    typed = st.lists(part, max_size=max_words).map(" ".join)
    oversized = st.tuples(st.sampled_from(MARKUP), st.integers(500, 6000)).map(lambda pair: _repeated(*pair))
    return st.one_of(typed, typed, typed, oversized)


def escaped(text: str) -> str:
    """How typed text must appear in mrkdwn: Slack's three control characters escaped, nothing else."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- what the bot posted -----------------------------------------------------------------------------------

LIVE_MARKUP = re.compile(r"<(?:[!@#]|https?:|mailto:)[^>]*>")
NEVER_FROM_THE_BOT = re.compile(r"<!(?:channel|here|everyone)\b")


def mrkdwn_texts(call: Call) -> list[str]:
    """The texts of one Web API call (or response_url post) that Slack reads as mrkdwn."""
    params = call.params
    texts: list[str] = []
    if isinstance(params.get("text"), str) and params.get("mrkdwn") is not False:
        texts.append(params["text"])
    view = params.get("view")
    _walk(params.get("blocks"), texts)
    _walk(params.get("attachments"), texts)
    if isinstance(view, dict):
        _walk(view.get("blocks"), texts)
    return texts


def _walk(node: Any, texts: list[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            texts.append(node["text"])
        for value in node.values():
            _walk(value, texts)
    elif isinstance(node, list):
        for item in node:
            _walk(item, texts)


def live_markup_from_typing(calls: Iterable[Call]) -> list[str]:
    """Every live mention, link or broadcast in what the bot posted that only typed text can have put there."""
    found = []
    for call in calls:
        for text in mrkdwn_texts(call):
            for token in LIVE_MARKUP.findall(text):
                if NEVER_FROM_THE_BOT.match(token) or "evil" in token.lower():
                    found.append(f"{call.method}: {token}")
    return found


def posted_text(calls: Iterable[Call]) -> str:
    return "\n".join(text for call in calls for text in mrkdwn_texts(call))


def calls_since(slack: FakeSlack, started: float) -> list[Call]:
    return [call for call in slack.calls() if call.time >= started]


PUBLIC_ANSWERS = ("chat.postMessage", "files.completeUploadExternal")  # e.g. a report shared in the channel


def answered(slack: FakeSlack, user: str, started: float, response_url: str | None = None) -> list[Call]:
    """What the bot told ``user`` since ``started``: an ephemeral, a DM, a modal, a response_url post, or a
    post in the channel where the command was typed (the tests send one request at a time)."""
    path = response_url.split("/hooks", 1)[-1] if response_url else None
    found = []
    for call in calls_since(slack, started):
        params = call.params
        if (
            user in (params.get("user"), params.get("channel"), params.get("user_id"))
            or (call.method == "views.open")
            or (call.method in PUBLIC_ANSWERS and params.get("channel") == CHANNEL and call.ok)
            or (path is not None and str(params.get("path", "")).endswith(path))
        ):
            found.append(call)
    return found


def wait_for_answer(
    slack: FakeSlack, user: str, started: float, response_url: str | None = None, timeout: float = 3.0
) -> list[Call]:
    """Poll (finely: each example waits here) until the bot answered ``user``; fail with what it did instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = answered(slack, user, started, response_url)
        if found:
            return found
        time.sleep(0.005)
    seen = ", ".join(
        f"{c.method}({c.params.get('user') or c.params.get('channel')})" for c in calls_since(slack, started)
    )
    raise AssertionError(f"no answer to {user} within {timeout}s; the fake Slack received: {seen or 'nothing'}")


# Steps and reads, not sayings: a file's upload ticket and bytes (the share is files.completeUploadExternal),
# and a permalink looked up for the summary line.
NOT_SAYING = ("files.getUploadURLExternal", FakeSlack.UPLOAD, "chat.getPermalink")
RETROSPECTIVE = re.compile(r"^:[a-z_]+: RUN-\d+ \(")  # a retrospective, and its line in the channel
CHART_TITLE = ": stop conditions over time"  # a retrospective's chart


def said(slack: FakeSlack) -> list[str]:
    """What the bot has said so far (posts, modals, files, response_url answers), leaving out what it posts on
    its own schedule (see ``on_its_own``); the background refresh of user-group members only reads."""
    writes = ("chat.", "views.", "files.", FakeSlack.RESPONSE_URL)
    return [
        f"{c.method} {c.params.get('text', '')}"
        for c in slack.calls()
        if c.method.startswith(writes) and c.method not in NOT_SAYING and not on_its_own(c)
    ]


def on_its_own(call: Call) -> bool:
    """Posted by the bot's own schedule, not an answer: the notice before a planned start, the summaries, and
    retrospectives (a sweep retries one Slack refused earlier: an earlier test's may land at any time)."""
    text = str(call.params.get("text", ""))
    if "Coming up:" in text or text.startswith("Chaos experiments") or RETROSPECTIVE.match(text):
        return True
    return call.method == "files.completeUploadExternal" and CHART_TITLE in str(call.params.get("files", ""))


def quiet(slack: FakeSlack, quiet_for: float = 0.15, timeout: float = 10.0) -> None:
    """Wait until the fake Slack has received nothing new for ``quiet_for`` seconds."""
    deadline = time.monotonic() + timeout
    seen = len(slack.calls())
    while time.monotonic() < deadline:
        time.sleep(quiet_for)
        now = len(slack.calls())
        if now == seen and not slack.in_flight:
            return
        seen = now


# -- state a refused request must not change ----------------------------------------------------------------


# Audit actions a refused request may add: the record of the command itself, and a record of the refusal.
# Posted by the bot's own schedule (the monthly summary it catches up on at start, a retrospective of a run a
# clean-up aborted): work no request caused, so never a change made by a refused one.
BACKGROUND_ACTIONS = ("summary.posted", "retrospective.posted")


def _is_a_record(action: str) -> bool:
    return action == "command" or "refus" in action or "denied" in action or action in BACKGROUND_ACTIONS


@dataclass(frozen=True)
class State:
    runs: tuple[tuple[Any, ...], ...]
    approvals: tuple[tuple[Any, ...], ...]
    kill_switch: tuple[tuple[Any, ...], ...]
    audit_seq: int


def state(server: ChaosbotServer) -> State:
    runs = server.query("SELECT id, state, version, notes, rollback_steps, end_reason FROM runs ORDER BY id")
    approvals = server.query("SELECT id, run_id, role, user_id FROM approvals ORDER BY id")
    switch = server.query("SELECT engaged, changed_by, reason FROM kill_switch")
    seq = server.query("SELECT seq FROM audit_head")
    return State(
        tuple(map(tuple, runs)),
        tuple(map(tuple, approvals)),
        tuple(map(tuple, switch)),
        int(seq[0][0]) if seq else 0,
    )


_FINGERPRINT = sql(
    """
    SELECT (SELECT count(*) FROM runs), (SELECT coalesce(sum(version), 0) FROM runs),
           (SELECT count(*) FROM approvals), (SELECT count(*) FROM kill_switch WHERE engaged),
           (SELECT count(*) FROM audit_events
             WHERE action <> 'command' AND action NOT LIKE '%refus%' AND action NOT LIKE '%denied%'
               AND action NOT IN ('summary.posted', 'retrospective.posted'))
    """
)


def fingerprint(server: ChaosbotServer) -> tuple[int, ...]:
    """One query that changes with any state change (a run's version moves on every transition), but not with
    the audit records of commands and refusals: cheap enough to take around every fuzz example."""
    return tuple(int(value) for value in server.query(_FINGERPRINT.text)[0])


class Unchanged:
    """The state fingerprint carried from one fuzz example to the next: one query per example, not two (ten
    thousand examples in CI). A change shows in the first example after which the fingerprint moved."""

    def __init__(self, server: ChaosbotServer) -> None:
        self.server = server
        self.last = fingerprint(server)

    def check(self, what: str) -> None:
        now = fingerprint(self.server)
        assert now == self.last, f"{what} changed state"


def changes(server: ChaosbotServer, before: State) -> list[str]:
    """What changed since ``before``, other than audit records of commands and refusals."""
    after = state(server)
    found = [
        f"{name} changed: {getattr(before, name)} -> {getattr(after, name)}"
        for name in ("runs", "approvals", "kill_switch")
        if getattr(before, name) != getattr(after, name)
    ]
    actions = server.query("SELECT action FROM audit_events WHERE seq > :seq ORDER BY seq", seq=before.audit_seq)
    found += [f"audit event {action}" for (action,) in actions if not _is_a_record(str(action))]
    return found


def assert_unchanged(server: ChaosbotServer, before: State, what: str) -> None:
    changed = changes(server, before)
    assert not changed, f"{what} was refused yet changed state: {changed}"
