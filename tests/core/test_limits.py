"""Text cut to Slack's limits stays valid mrkdwn and says that it was cut."""

from __future__ import annotations

import pytest

from bot.interface.limits import CLIPPED, MESSAGE_BLOCKS, MESSAGE_TEXT, clip_mrkdwn, clip_plain, fit_message
from bot.interface.render import escape


def test_short_text_is_left_alone() -> None:
    assert clip_mrkdwn("*Aborted* by <@U1>", 3000) == "*Aborted* by <@U1>"


def test_a_long_reason_keeps_the_bold_state_line_whole_and_says_it_was_clipped() -> None:
    text = "*Aborted* by <@U0RELIAB>: " + "word " * 1000
    clipped = clip_mrkdwn(text, 3000)
    assert len(clipped) <= 3000
    assert clipped.startswith("*Aborted* by <@U0RELIAB>: ") and clipped.endswith(CLIPPED)


def test_a_bold_span_the_cut_leaves_open_is_closed_again() -> None:
    reason = "the portal pages the on-call " * 200
    clipped = clip_mrkdwn(f":octagonal_sign: *Aborted by <@U0RELIAB>: {reason}*", 3000)
    assert (len(clipped) <= 3000 and clipped.endswith("* " + CLIPPED.strip())) or clipped.endswith("*" + CLIPPED)
    body = clipped.removesuffix(CLIPPED)
    assert body.startswith(":octagonal_sign: *Aborted by <@U0RELIAB>: the portal") and body.endswith("*")
    assert body.count("*") == 2


@pytest.mark.parametrize("token", ["<@U0RELIAB>", "<https://grafana.example/d/abc?from=now-1h|dashboard>", "&amp;"])
def test_a_cut_never_splits_a_mention_a_link_or_an_entity(token: str) -> None:
    for offset in range(0, len(token) + 2):
        text = "a" * (3000 - len(CLIPPED) - offset) + token + " tail" * 10
        clipped = clip_mrkdwn(text, 3000)
        body = clipped.removesuffix(CLIPPED)
        assert len(clipped) <= 3000
        assert body.count("<") == body.count(">")
        assert body.count("&") == body.count(";")


def test_limits_are_measured_after_escaping() -> None:
    rollback = "make stop && make start " * 120  # 2,880 characters typed, about 3,100 once escaped
    escaped = escape(rollback)
    assert len(rollback) < 3000 < len(escaped)
    clipped = clip_mrkdwn(escaped, 3000)
    assert len(clipped) <= 3000 and clipped.endswith(CLIPPED)
    assert clipped.removesuffix(CLIPPED).count("&amp;") == clipped.count("&")


def test_plain_text_is_cut_with_an_ellipsis() -> None:
    assert clip_plain("x" * 200, 150) == "x" * 149 + "…"
    assert clip_plain("Abort", 75) == "Abort"


def test_a_message_over_the_limits_is_made_to_fit_and_says_how_many_blocks_were_left_out() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": str(i)}} for i in range(70)]
    text, kept = fit_message("x " * 30_000, blocks)
    assert len(text) <= MESSAGE_TEXT and len(kept) == MESSAGE_BLOCKS
    assert "21 more blocks not shown" in kept[-1]["elements"][0]["text"]


def test_every_message_fits_when_it_is_built() -> None:
    from bot.interface.kit import Message, section

    message = Message(text="x" * 50_000, blocks=[section(str(i)) for i in range(60)])
    assert len(message.text) <= MESSAGE_TEXT and len(message.blocks) == MESSAGE_BLOCKS
    assert "11 more blocks not shown" in message.blocks[-1]["elements"][0]["text"]
