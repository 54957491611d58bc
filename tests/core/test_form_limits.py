"""Every text field of every form takes exactly what the core accepts: its ``max_length`` is the core's limit,
so the form never lets through what the core refuses, nor refuses what the core would take."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from bot.actions.models import WHAT_MAX
from bot.catalogue.models import Catalogue
from bot.freezes.service import MAX_REASON
from bot.interface.kit import Block
from bot.interface.learning.messages import action_item_modal
from bot.interface.metadata import OverrideMeta, PlanMeta, RunRef, StartRef
from bot.interface.render import SLACK
from bot.interface.runs.messages import plan_modal, reject_modal
from bot.interface.schedule.messages import freeze_modal, override_modal
from bot.runs.models import Run
from bot.runs.rules import MAX_TEXT, default_rollback
from bot.schedule.gate import Refusal, Rule
from bot.words import Words

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _limits(view: Block) -> dict[str, Any]:
    """block id → the text input's max_length, for every text input of the form."""
    return {
        block["block_id"]: block["element"].get("max_length")
        for block in view["blocks"]
        if block.get("type") == "input" and block["element"]["type"] == "plain_text_input"
    }


def _run() -> Run:
    return Run(id=7, experiment_id="CE-01", environment="staging", planned_start=NOW)


def test_the_plan_form_takes_what_the_core_takes(bundled_catalogue: Catalogue) -> None:
    experiment = bundled_catalogue.experiments[0]
    view = plan_modal(experiment, "staging", NOW, default_rollback(experiment), PlanMeta(experiment=experiment.id))
    assert _limits(view) == {"rollback_steps": MAX_TEXT, "notes": MAX_TEXT}


def test_the_reject_reason_takes_what_the_core_takes() -> None:
    assert _limits(reject_modal(_run())) == {"reason": MAX_TEXT}


def test_the_freeze_forms_take_what_the_core_takes() -> None:
    refusal = Refusal(rule=Rule.FREEZE, words=Words.of("frozen"), overridable=True)
    override = override_modal(_run(), refusal, OverrideMeta(start=StartRef(run=7), freeze=1), SLACK)
    assert _limits(override) == {"reason": MAX_REASON}
    assert _limits(freeze_modal(["staging"], NOW)) == {"reason": MAX_REASON}


def test_the_action_item_form_takes_what_the_core_takes() -> None:
    assert _limits(action_item_modal("RUN-7", RunRef(run=7), date(2026, 12, 1))) == {"what": WHAT_MAX}
