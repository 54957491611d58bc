"""A chaosbot run written as a Chaos Toolkit journal has the shape chaostoolkit-lib itself writes."""

from __future__ import annotations

import json
import shutil
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.retro.journal import run_journal
from bot.runs.core import RunCore
from bot.runs.models import RunState
from tests.conftest import Clock
from tests.retro import stories

ZONE = ZoneInfo("Australia/Sydney")
LANG_FILE = Path(__file__).parents[1] / "adapters" / "chaostoolkit" / "lang-file.json"


@pytest.fixture(scope="module")
def real_journal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What `chaos run` writes, for the tutorial experiment from Chaos Toolkit's documentation."""
    from chaoslib.experiment import run_experiment
    from chaoslib.loader import load_experiment

    folder = tmp_path_factory.mktemp("ctk")
    (folder / "default.locale.txt").write_text("welcome=hello\n")
    shutil.copy(LANG_FILE, folder / "lang-file.json")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        journal: dict[str, Any] = run_experiment(load_experiment(str(folder / "lang-file.json")))
    return json.loads(json.dumps(journal, default=str))


def test_a_held_run_is_a_completed_journal_shaped_like_chaos_toolkit_s(
    core: RunCore, clock: Clock, real_journal: dict[str, Any]
) -> None:
    story = stories.held(core, clock)
    journal = json.loads(json.dumps(run_journal(core.db, story.run_id, zone=ZONE)))
    assert set(journal) == set(real_journal)
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert set(journal["steady_states"]) == set(real_journal["steady_states"])
    real_probe, probe = (
        real_journal["steady_states"]["before"]["probes"][0],
        journal["steady_states"]["before"]["probes"][0],
    )
    assert set(probe) == set(real_probe) and set(probe["activity"]) >= {"type", "name", "tolerance", "provider"}
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert set(journal["run"][0]) == set(real_journal["run"][0]) and set(journal["rollbacks"][0]) >= {
        "activity",
        "status",
    }
    during = journal["steady_states"]["during"]
    assert during and all(sample["activity"]["name"] == stories.CONDITION for sample in during)
    assert journal["duration"] > 0 and journal["start"].endswith("+00:00")


def test_a_breached_run_is_aborted_and_deviated(core: RunCore, clock: Clock) -> None:
    story = stories.breached(core, clock)
    journal = run_journal(core.db, story.run_id, zone=ZONE)
    assert journal["status"] == "aborted" and journal["deviated"] is True
    assert any(not sample["tolerance_met"] for sample in journal["steady_states"]["during"])


def test_the_rollbacks_an_adapter_reported_are_the_journal_s_rollbacks_shaped_like_chaos_toolkit_s(
    core: RunCore, clock: Clock, real_journal: dict[str, Any]
) -> None:
    story = stories.begin(core, clock)
    story.fault(
        0,
        30,
        "failed",
        "Chaos Toolkit rollbacks failed: 'tell-the-team' (answered HTTP 503)",
        adapter="chaostoolkit",
        steps=[
            {"name": "flip-flag-off", "status": "succeeded", "duration_seconds": 0.25, "error": None},
            {"name": "tell-the-team", "status": "failed", "duration_seconds": 1.5, "error": "answered HTTP 503"},
        ],
    )
    story.finish(31, RunState.ABORTED, actor="U0OWNER", reason="seen enough")

    journal = json.loads(json.dumps(run_journal(core.db, story.run_id, zone=ZONE)))

    assert [a["name"] for a in journal["experiment"]["rollbacks"]] == ["flip-flag-off", "tell-the-team"]
    off, tell = journal["rollbacks"]
    assert set(off) == set(real_journal["rollbacks"][0])  # what chaostoolkit-lib writes for a rollback
    assert (off["status"], off["duration"], tell["status"], tell["duration"]) == ("succeeded", 0.25, "failed", 1.5)
    assert tell["exception"] == ["answered HTTP 503"] and off["end"] == tell["start"]
    assert tell["end"] == journal["rollbacks"][-1]["end"] and tell["end"] == story.at(30).astimezone(UTC).isoformat()
