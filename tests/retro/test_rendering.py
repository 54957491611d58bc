"""The retrospective as Block Kit (valid, within Slack's limits, typed text escaped) and as Markdown."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from zoneinfo import ZoneInfo

from bot.export import export_rows
from bot.interface.learning.messages import ADD_ACTION, CHART_MISSING, retrospective_message, summary_line
from bot.interface.metadata import RunRef
from bot.interface.render import NameRenderer
from bot.retro.journal import ctk_journal
from bot.retro.markdown import render_markdown, run_report
from bot.retro.models import ActionItemLine, ConditionReport, Retrospective, TimelineEntry
from bot.retro.service import build
from bot.runs.core import RunCore
from bot.words import Words
from tests.conftest import Clock
from tests.fakeslack.blockkit import validate_blocks
from tests.retro import stories

ZONE = ZoneInfo("Australia/Sydney")


def retro_for(core: RunCore, clock: Clock, ending: str = "breached") -> Retrospective:
    story = stories.ENDINGS[ending](core, clock)
    return build(core.db, story.run_id, zone=ZONE, environ={"GRAFANA_URL": "https://g.example"})


def section_texts(blocks: list[dict[str, object]]) -> list[str]:
    return [str(block["text"]["text"]) for block in blocks if block["type"] == "section"]  # type: ignore[index]  # a section's text object


def test_blocks_are_valid_and_carry_the_add_action_button(core: RunCore, clock: Clock) -> None:
    retro = retro_for(core, clock)
    message = retrospective_message(retro)

    assert validate_blocks(message.blocks, surface="message") == []
    actions = message.blocks[-1]
    assert actions["type"] == "actions"
    (add,) = actions["elements"]
    assert add["action_id"] == ADD_ACTION and RunRef.load(add["value"]) == RunRef(run=retro.run_id)
    text = "\n".join(section_texts(message.blocks))
    assert ":red_circle: *Hypothesis refuted.* Stop condition share-link latency breached" in text
    assert "*Timeline*" in text and "*Recovery against the RTO*" in text and "*Gaps*" in text
    assert "<https://g.example/d/share-links/share-links?orgId=1&from=" in text
    assert message.text.startswith(":red_circle: RUN-1 (CE-01, staging) auto-aborted on a stop condition")


def test_typed_text_is_escaped_and_people_are_mentions(core: RunCore, clock: Clock) -> None:
    retro = retro_for(core, clock, "aborted by a person")
    item = ActionItemLine("AI-7", "Fix <!channel> & retry > twice", "U0RITA", date(2026, 12, 9))
    message = retrospective_message(replace(retro, action_items=(item,)))

    text = "\n".join(section_texts(message.blocks))
    assert "Aborted by <@rita> (customer demo starting &lt;now&gt; &amp; then)" in text
    assert "• AI-7 Fix &lt;!channel&gt; &amp; retry &gt; twice: <@U0RITA>, due 09 Dec 2026" in text
    assert "<!channel>" not in json.dumps(message.blocks)


def test_a_long_story_stays_within_slacks_limits(core: RunCore, clock: Clock) -> None:
    retro = retro_for(core, clock, "held")
    many = tuple(
        TimelineEntry(retro.timeline[0].at, f"Day {i // 40}", "10:00:00", "AEDT", "notice", Words.of("x" * 150))
        for i in range(400)
    )
    conditions = tuple(replace(retro.conditions[0], name=f"probe {i}") for i in range(30))
    items = tuple(ActionItemLine(f"AI-{i}", "y" * 250, "U1", None) for i in range(60))
    big = replace(retro, timeline=many, conditions=conditions, action_items=items, gaps=("z" * 4000,))

    message = retrospective_message(big, chart_missing=True)

    assert len(message.blocks) <= 50
    assert all(len(text) <= 3000 for text in section_texts(message.blocks))
    assert validate_blocks(message.blocks, surface="message") == []
    assert message.blocks[-1]["type"] == "actions"  # the button survives the trimming


def test_chart_missing_is_said(core: RunCore, clock: Clock) -> None:
    retro = retro_for(core, clock, "held")

    assert CHART_MISSING in json.dumps(retrospective_message(retro, chart_missing=True).blocks)
    assert CHART_MISSING not in json.dumps(retrospective_message(retro).blocks)


def test_console_rendering_uses_names(core: RunCore, clock: Clock) -> None:
    retro = retro_for(core, clock, "aborted by a person")
    message = retrospective_message(retro, NameRenderer({"rita": "Rita"}))

    assert "Aborted by @Rita (customer demo starting <now> & then)" in "\n".join(section_texts(message.blocks))


def test_summary_line_links_to_the_retrospective(core: RunCore, clock: Clock) -> None:
    retro = retro_for(core, clock, "held")
    line = summary_line(retro, link="https://acme.slack.com/archives/C1/p1?thread_ts=1.2&cid=C1")

    assert line.text == (
        ":large_green_circle: RUN-1 (CE-01, staging) completed: *hypothesis held*. Recovered in 10.0 s after the "
        "revert: within the RTO of 5m 00s, 4m 50s to spare. "
        "<https://acme.slack.com/archives/C1/p1?thread_ts=1.2&cid=C1|Retrospective>"
    )
    assert validate_blocks(line.blocks, surface="message") == []


def test_markdown_has_every_part(core: RunCore, clock: Clock) -> None:
    retro = retro_for(core, clock)
    item = ActionItemLine("AI-1", "Add a DB fallback | cache", "rita", date(2026, 12, 9), link="https://gh.example/1")

    text = render_markdown(replace(retro, action_items=(item,)), names={"rita": "Rita", stories.OWNER: "Oliver"})

    assert text.startswith("# Retrospective: RUN-1 · CE-01 Share token cache outage\n")
    assert "**Hypothesis refuted.** Stop condition share-link latency breached at" in text
    assert "| Owner | @Oliver |" in text and "| Ended | auto-aborted on a stop condition (aborted) |" in text
    assert "## Timeline (Australia/Sydney)" in text and "Approved by @Rita as reliability\\_partner" in text
    assert "| During (fault) | 6 | 380 ms | 729 ms | 812 ms | 1 | 0 |" in text
    assert "- AI-1 [Add a DB fallback | cache](https://gh.example/1): @Rita, due 2026-12-09" in text
    assert "[Share-link dashboard](https://g.example/d/share-links/" in text


def test_markdown_table_cells_escape_pipes(core: RunCore, clock: Clock) -> None:
    retro = retro_for(core, clock, "held")
    odd = replace(retro, hypothesis="a | b\nc")

    assert "| Hypothesis | a \\| b c |" in render_markdown(odd)


def test_no_stop_conditions_renders(core: RunCore, clock: Clock) -> None:
    retro = replace(retro_for(core, clock, "held"), conditions=tuple[ConditionReport, ...]())

    assert "None: this experiment watches nothing" in json.dumps(retrospective_message(retro).blocks)
    assert "## Stop conditions\n\nNone: nothing was measured." in render_markdown(retro)


def test_run_report_is_the_markdown_of_the_run(core: RunCore, clock: Clock) -> None:
    story = stories.failed(core, clock)

    text = run_report(core.db, story.run_id, zone=ZONE)

    assert text.startswith(f"# Retrospective: RUN-{story.run_id} · CE-01")
    assert "**Hypothesis not tested.** It failed: inject failed: ConnectError: connection refused." in text


def test_the_runs_silences_are_listed_as_text_in_every_form_of_its_record(core: RunCore, clock: Clock) -> None:
    story = stories.breached(core, clock)
    story.silence("4f1c-lifted", {"alertname": "ShareLinkLatencyHigh", "env": "staging"}, expired=31)
    story.silence("9a2b-stuck", {"team": "<!channel> *ops*"}, expired=None, error="DELETE answered HTTP 503: <b>")
    retro = build(core.db, story.run_id, zone=ZONE)

    slack = "\n".join(section_texts(retrospective_message(retro).blocks))
    assert "*Alertmanager silences*" in slack
    assert "• `4f1c-lifted` alertname=ShareLinkLatencyHigh, env=staging: expired at " in slack
    assert "• `9a2b-stuck` team=&lt;!channel&gt; *ops*: not expired yet (DELETE answered HTTP 503: &lt;b&gt;)" in slack
    assert "<!channel>" not in json.dumps(retrospective_message(retro).blocks)
    console = "\n".join(section_texts(retrospective_message(retro, NameRenderer()).blocks))
    assert "• `9a2b-stuck` team=<!channel> *ops*: not expired yet" in console and "ends by itself at" in console

    markdown = render_markdown(retro)
    assert "## Alertmanager silences (the alerts it was expected to fire)" in markdown
    assert "- 4f1c-lifted (alertname=ShareLinkLatencyHigh, env=staging): expired at " in markdown
    assert "- 9a2b-stuck (team=\\<!channel\\> \\*ops\\*): not expired yet" in markdown

    [extension] = ctk_journal(retro, adapter="redis")["experiment"]["extensions"]
    assert [s["id"] for s in extension["silences"]] == ["4f1c-lifted", "9a2b-stuck"]
    exported = next(row for row in export_rows(core.db, "runs") if row["run"] == retro.label)
    assert exported["silences"] == ["4f1c-lifted", "9a2b-stuck"]
