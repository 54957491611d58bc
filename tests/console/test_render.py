"""The terminal renderer: Block Kit in, readable text and numbered buttons out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue.service import load_catalogue
from bot.console import forms
from bot.console.render import (
    emoji,
    initial_state,
    input_fields,
    mrkdwn,
    render_blocks,
    render_home,
    render_message,
    render_modal,
)
from bot.interface import kit
from bot.interface.metadata import PlanMeta, RunRef
from bot.interface.render import NameRenderer
from bot.interface.runs import messages
from bot.runs.queries import Home, Listed
from bot.runs.rules import default_rollback
from bot.words import Group, Person, Words

SYDNEY = ZoneInfo("Australia/Sydney")


def plan_view() -> kit.Block:
    experiment = load_catalogue().get("CE-01")
    assert experiment is not None
    start = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 14:00 in Sydney (AEDT)
    meta = PlanMeta(experiment="CE-01", channel="console")
    return messages.plan_modal(experiment, "staging", start, default_rollback(experiment), meta)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("<https://example.com|the docs>", "the docs (https://example.com)"),
        ("*Owner* is _here_", "Owner is here"),
        ("run_id and snake_case stay", "run_id and snake_case stay"),
        ("5 * 3 * 2", "5 * 3 * 2"),
        (":white_check_mark: done", "✅ done"),
        (":no_such_emoji:", ":no_such_emoji:"),
        (":lock: a freeze, :unlock: lifted", "🔒 a freeze, 🔓 lifted"),
        (":pencil2: Plan edited, :no_entry: refused", "✏️ Plan edited, ⛔ refused"),
        (":clipboard: planned, :alarm_clock: coming up", "📋 planned, ⏰ coming up"),
        ("typed <!channel> & <@rita> stay as typed", "typed <!channel> & <@rita> stay as typed"),
    ],
)
def test_mrkdwn_becomes_plain_text(raw: str, shown: str) -> None:
    assert mrkdwn(raw) == shown


def test_people_and_groups_are_named_from_the_console_directory() -> None:
    say = NameRenderer({"U0RITA": "rita"})
    words = Words.of(Person("U0RITA"), " asks ", Group("S0SRE"), " and ", Person("sam"))
    assert say(words) == "@rita asks @S0SRE and @sam"
    assert say.channel("console") == "#console"


def test_bold_is_ansi_only_with_color() -> None:
    assert mrkdwn("*Owner*", color=True) == "\033[1mOwner\033[0m"
    assert emoji("warning") == "⚠️"


def test_header_is_underlined_and_context_prefixed() -> None:
    text = render_blocks([kit.header("Experiment catalogue"), kit.context("Plan one")]).text
    assert text.splitlines() == ["Experiment catalogue", "=" * 20, "  » Plan one"]


def test_fields_are_label_value_lines() -> None:
    block = {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": "*Environment*\nstaging"},
            {"type": "mrkdwn", "text": "*Owner*\n@oliver"},
        ],
    }
    assert render_blocks([block]).text.splitlines() == ["Environment: staging", "Owner: @oliver"]


def test_action_buttons_are_numbered_with_their_payload() -> None:
    ref = RunRef(run=4).dump()
    actions = {
        "type": "actions",
        "elements": [
            kit.button("Approve", "run.approve", ref, "primary"),
            kit.button("Reject", "run.reject", ref),
        ],
    }
    rendered = render_blocks([kit.section("*RUN-4*"), actions])
    assert rendered.text.splitlines() == ["RUN-4", "[1] Approve  [2] Reject"]
    assert [(b.number, b.label, b.action_id, b.value) for b in rendered.buttons] == [
        (1, "Approve", "run.approve", ref),
        (2, "Reject", "run.reject", ref),
    ]


def test_accessory_buttons_in_a_home_view_are_numbered_and_keep_confirm() -> None:
    view = {
        "type": "home",
        "blocks": [
            kit.section("*RUN-1* running", accessory=kit.button("Abort", "run.abort", "{}", "danger", {"x": 1})),
            kit.section("*RUN-2* waits", accessory=kit.button("Approve", "run.approve", "{}")),
        ],
    }
    rendered = render_home(view)
    assert "RUN-1 running\n    [1] Abort" in rendered.text
    assert "[2] Approve" in rendered.text
    assert rendered.buttons[0].confirm == {"x": 1}


def test_home_view_from_the_builder() -> None:
    home = Home(kill_switch=True, running=Listed([], 0), awaiting_you=Listed([], 0), upcoming=Listed([], 0))
    view = messages.home_view(home, SYDNEY, NameRenderer())
    text = render_home(view).text
    assert "🚨 Global kill switch engaged: no run can start until `/chaos resume`." in text
    assert "Waiting for your approval\n=========================" in text


def test_message_without_blocks_shows_its_text() -> None:
    assert render_message("@sam *hi*", []).text == "@sam hi"
    assert render_message("x", kit.notice(":warning: no").blocks).text == "⚠️ no"


def test_modal_lists_fields_numbered_with_current_values() -> None:
    view = plan_view()
    assert [(f.number, f.block_id, f.kind) for f in input_fields(view)] == [
        (1, "environment", "static_select"),
        (2, "planned_start", "datetimepicker"),
        (3, "rollback_steps", "plain_text_input"),
        (4, "notes", "plain_text_input"),
        (5, "auto_start", "checkboxes"),
    ]
    text = render_modal(view, initial_state(view), SYDNEY, errors={"notes": "Too long."})
    assert text.startswith("┌ Plan CE-01")
    assert "(1) Environment [environment]: staging" in text
    assert "(2) Planned start [planned_start]: 2026-12-01 14:00 AEDT" in text
    assert "(4) Notes (optional) [notes]: —" in text
    assert "(5) Scheduled start (optional) [auto_start]: Start automatically at the planned start" in text
    assert "⚠ Too long." in text
    assert "submit → Plan run" in text


def test_initial_state_has_slacks_view_state_shape() -> None:
    state = initial_state(plan_view())
    assert state["environment"]["value"]["selected_option"]["value"] == "staging"
    assert state["planned_start"]["value"] == {"type": "datetimepicker", "selected_date_time": 1796094000}
    assert state["notes"]["value"] == {"type": "plain_text_input", "value": None}


def test_set_values_like_slack_would_report_them() -> None:
    view = plan_view()
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    start = forms.find_field(view, "2")
    assert forms.field_state(start, "2026-12-01 14:00", SYDNEY)["selected_date_time"] == int(now.timestamp())
    assert forms.field_state(start, "+30m", SYDNEY, now)["selected_date_time"] == int(now.timestamp()) + 1800
    assert forms.field_state(start, "now", SYDNEY, now)["selected_date_time"] == int(now.timestamp())
    notes = forms.find_field(view, "Notes")
    assert forms.field_state(notes, r"one\ntwo", SYDNEY) == {"type": "plain_text_input", "value": "one\ntwo"}
    environment = forms.find_field(view, "environment")
    assert forms.field_state(environment, "staging", SYDNEY)["selected_option"]["value"] == "staging"
    with pytest.raises(forms.FormError, match="one of: staging"):
        forms.field_state(environment, "production", SYDNEY)
    with pytest.raises(forms.FormError, match="Not a date"):
        forms.field_state(start, "tomorrow-ish", SYDNEY)
    with pytest.raises(forms.FormError, match="No field"):
        forms.find_field(view, "9")


def test_required_fields_are_checked_before_submit() -> None:
    view = plan_view()
    values = initial_state(view)
    assert forms.missing_required(view, values) == {}
    values["rollback_steps"]["value"]["value"] = None
    assert forms.missing_required(view, values) == {"rollback_steps": forms.REQUIRED}


def test_a_long_catalogue_names_every_experiment_and_fits_one_message() -> None:
    from bot.catalogue.models import Catalogue
    from tests.fakeslack.blockkit import validate_blocks

    template = load_catalogue().experiments[0]
    ids = [f"CE-{n:03d}" for n in range(1, 121)]
    catalogue = Catalogue(experiments=[template.model_copy(update={"id": i, "title": f"Flag {i}"}) for i in ids])

    message = messages.catalogue_message(catalogue)

    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert all(f"*{i}* Flag {i}" in shown for i in ids) and "*And 80 more*" in shown
    assert message.text == "120 experiments in the catalogue"
    assert validate_blocks(message.blocks, surface="message") == []
