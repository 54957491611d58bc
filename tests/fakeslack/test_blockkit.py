from __future__ import annotations

from typing import Any

import pytest

from tests.fakeslack.blockkit import validate_blocks, validate_view

JSON = dict[str, Any]


def plain(text: str) -> JSON:
    return {"type": "plain_text", "text": text}


def mrkdwn(text: str) -> JSON:
    return {"type": "mrkdwn", "text": text}


def section(text: str = "hello", **extra: Any) -> JSON:
    return {"type": "section", "text": mrkdwn(text), **extra}


def button(text: str = "Go", **extra: Any) -> JSON:
    return {"type": "button", "text": plain(text), "action_id": "go", **extra}


def option(text: str = "One", value: str = "one") -> JSON:
    return {"text": plain(text), "value": value}


def modal(**extra: Any) -> JSON:
    return {"type": "modal", "title": plain("Run experiment"), "blocks": [section()], **extra}


VALID_MESSAGE = [
    {"type": "header", "text": plain("Experiment #42")},
    section("*Target:* checkout", accessory=button(style="danger", value="x" * 2000)),
    {"type": "section", "fields": [mrkdwn(f"*{i}*") for i in range(10)]},
    {"type": "divider"},
    {
        "type": "context",
        "elements": [mrkdwn("ctx"), {"type": "image", "image_url": "https://x/y.png", "alt_text": "y"}],
    },
    {
        "type": "actions",
        "block_id": "controls",
        "elements": [
            button("Approve", style="primary", value="approve"),
            {
                **button("Abort"),
                "action_id": "abort",
                "confirm": {
                    "title": plain("Sure?"),
                    "text": mrkdwn("Really"),
                    "confirm": plain("Yes"),
                    "deny": plain("No"),
                },
            },
            {"type": "static_select", "action_id": "pick", "options": [option(), option("Two", "two")]},
            {
                "type": "overflow",
                "action_id": "more",
                "options": [option(), {**option("Docs", "d"), "url": "https://x"}],
            },
        ],
    },
    {"type": "image", "image_url": "https://x/y.png", "alt_text": "graph", "title": plain("Latency")},
    {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": "hi"}]}]},
    {"type": "markdown", "text": "**bold**"},
]

VALID_MODAL_BLOCKS = [
    {
        "type": "input",
        "block_id": "target",
        "label": plain("Target"),
        "element": {"type": "plain_text_input", "action_id": "v", "max_length": 3000, "placeholder": plain("svc")},
    },
    {
        "type": "input",
        "block_id": "when",
        "label": plain("When"),
        "optional": True,
        "element": {"type": "datepicker", "action_id": "d", "initial_date": "2025-01-31"},
    },
    {
        "type": "input",
        "block_id": "at",
        "label": plain("At"),
        "element": {"type": "timepicker", "action_id": "t", "initial_time": "23:59"},
    },
    {
        "type": "input",
        "block_id": "kind",
        "label": plain("Kind"),
        "element": {"type": "radio_buttons", "action_id": "k", "options": [{"text": mrkdwn("*a*"), "value": "a"}]},
    },
    {
        "type": "input",
        "block_id": "who",
        "label": plain("Who"),
        "element": {"type": "multi_users_select", "action_id": "u", "max_selected_items": 3},
    },
    {
        "type": "input",
        "block_id": "n",
        "label": plain("N"),
        "element": {"type": "number_input", "action_id": "n", "is_decimal_allowed": False},
    },
]


def test_valid_message_blocks_pass() -> None:
    assert validate_blocks(VALID_MESSAGE, surface="message") == []


def test_valid_modal_passes() -> None:
    view = modal(
        blocks=VALID_MODAL_BLOCKS,
        submit=plain("Run"),
        close=plain("Cancel"),
        private_metadata="m" * 3000,
        callback_id="c" * 255,
    )
    assert validate_view(view) == []


def test_valid_home_passes() -> None:
    assert validate_view({"type": "home", "blocks": [section()] * 100}) == []


@pytest.mark.parametrize(
    ("blocks", "needle"),
    [
        ([section(f"b{i}") for i in range(51)], "no more than 50 items"),
        ([section("x" * 3001)], "/blocks/0/text/text"),
        ([{"type": "section", "fields": [mrkdwn("f")] * 11}], "between 1 and 10 items"),
        ([{"type": "section", "fields": [mrkdwn("x" * 2001)]}], "/blocks/0/fields/0/text"),
        ([{"type": "section"}], "section requires text or fields"),
        ([section("")], "non-empty"),
        ([{"type": "header", "text": plain("h" * 151)}], "at most 150"),
        ([{"type": "header", "text": mrkdwn("h")}], "must be plain_text"),
        ([{"type": "context", "elements": [mrkdwn("c")] * 11}], "between 1 and 10 items"),
        (
            [{"type": "actions", "elements": [{**button(), "action_id": f"a{i}"} for i in range(26)]}],
            "between 1 and 25",
        ),
        ([section(accessory=button("b" * 76))], "/blocks/0/accessory/text/text"),
        ([section(accessory={**button(), "text": mrkdwn("b")})], "must be plain_text"),
        ([section(accessory=button(action_id="a" * 256))], "/blocks/0/accessory/action_id"),
        ([section(accessory=button(value="v" * 2001))], "/blocks/0/accessory/value"),
        ([section(accessory=button(style="secondary"))], "'primary' or 'danger'"),
        ([section(accessory=button(url="https://" + "u" * 3000))], "/blocks/0/accessory/url"),
        ([section(block_id="b" * 256)], "/blocks/0/block_id"),
        ([section(block_id="same"), section(block_id="same")], "duplicate block_id"),
        ([{"type": "actions", "elements": [button(), button()]}], "duplicate action_id"),
        ([{"type": "carousel_of_doom"}], "unsupported block type"),
        ([{"type": "actions", "elements": [{"type": "plain_text_input", "action_id": "x"}]}], "not allowed here"),
        (
            [
                section(
                    accessory=button(
                        confirm={
                            "title": plain("t" * 101),
                            "text": plain("x"),
                            "confirm": plain("y"),
                            "deny": plain("n"),
                        }
                    )
                )
            ],
            "/blocks/0/accessory/confirm/title/text",
        ),
        (
            [
                section(
                    accessory=button(
                        confirm={
                            "title": plain("t"),
                            "text": plain("x"),
                            "confirm": plain("y" * 31),
                            "deny": plain("n"),
                        }
                    )
                )
            ],
            "/blocks/0/accessory/confirm/confirm/text",
        ),
        (
            [section(accessory={"type": "static_select", "action_id": "s", "options": [option("o" * 76)]})],
            "/blocks/0/accessory/options/0/text/text",
        ),
        (
            [section(accessory={"type": "static_select", "action_id": "s", "options": [option(value="v" * 151)]})],
            "/blocks/0/accessory/options/0/value",
        ),
        (
            [section(accessory={"type": "static_select", "action_id": "s", "options": [option()] * 101})],
            "between 1 and 100",
        ),
        ([section(accessory={"type": "overflow", "action_id": "o", "options": [option()]})], "between 2 and 5"),
        ([{"type": "file", "external_id": "x", "source": "remote"}], None),
        ([{"type": "image", "image_url": "https://x/y.png"}], "missing required field: alt_text"),
    ],
)
def test_invalid_message_blocks_are_reported(blocks: list[JSON], needle: str | None) -> None:
    errors = validate_blocks(blocks, surface="message")
    if needle is None:
        assert errors == []
    else:
        assert any(needle in e for e in errors), errors


def test_every_error_carries_a_json_pointer() -> None:
    errors = validate_blocks([section(""), {"type": "header", "text": mrkdwn("x" * 200)}], surface="message")
    assert len(errors) >= 3
    assert all("[json-pointer:/blocks/" in e for e in errors)


def test_modal_allows_100_blocks_and_rejects_101() -> None:
    assert validate_view(modal(blocks=[section()] * 100)) == []
    assert any("no more than 100" in e for e in validate_view(modal(blocks=[section()] * 101)))


def test_message_only_blocks_are_rejected_in_views() -> None:
    errors = validate_view({"type": "home", "blocks": [{"type": "markdown", "text": "x"}]})
    assert any("only allowed in messages" in e for e in errors)


@pytest.mark.parametrize(
    ("view", "needle"),
    [
        (modal(title=plain("t" * 25)), "/view/title/text"),
        (modal(title=mrkdwn("title")), "/view/title/type"),
        ({"type": "modal", "blocks": []}, "/view/title"),
        (modal(submit=plain("s" * 25)), "/view/submit/text"),
        (modal(close=plain("c" * 25)), "/view/close/text"),
        (modal(private_metadata="m" * 3001), "/view/private_metadata"),
        (modal(callback_id="c" * 256), "/view/callback_id"),
        (modal(blocks=VALID_MODAL_BLOCKS[:1]), "submit is required"),
        ({"type": "dialog", "blocks": []}, "/view/type"),
        ({"type": "modal", "title": plain("x")}, "/view/blocks"),
        (
            modal(
                submit=plain("Go"),
                blocks=[{"type": "input", "label": plain("l" * 2001), "element": {"type": "plain_text_input"}}],
            ),
            "/view/blocks/0/label/text",
        ),
        (modal(submit=plain("Go"), blocks=[{"type": "input", "label": plain("l")}]), "missing required field: element"),
        (
            modal(
                submit=plain("Go"),
                blocks=[{"type": "input", "label": plain("l"), "element": {"type": "button", "text": plain("b")}}],
            ),
            "not allowed here",
        ),
        (
            modal(
                submit=plain("Go"),
                blocks=[
                    {"type": "input", "label": plain("l"), "element": {"type": "plain_text_input", "max_length": 3001}}
                ],
            ),
            "/view/blocks/0/element/max_length",
        ),
        (
            modal(
                submit=plain("Go"),
                blocks=[
                    {
                        "type": "input",
                        "label": plain("l"),
                        "element": {"type": "datepicker", "initial_date": "31/01/2025"},
                    }
                ],
            ),
            "YYYY-MM-DD",
        ),
    ],
)
def test_invalid_views_are_reported(view: JSON, needle: str) -> None:
    errors = validate_view(view)
    assert any(needle in e for e in errors), errors


def test_slack_sdk_validators_cover_blocks_we_do_not_check_field_by_field() -> None:
    video = {
        "type": "video",
        "title": plain("t" * 200),
        "video_url": "https://x/v",
        "thumbnail_url": "https://x/t.png",
        "alt_text": "v",
    }
    errors = validate_blocks([video], surface="message")
    assert any(e.startswith("slack_sdk: title attribute cannot exceed") for e in errors), errors
